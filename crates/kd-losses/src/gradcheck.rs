//! Finite-difference gradient checks for the unit tests (f64, central differences).

use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// A `[rows, cols]` f64 tensor of standard-normal values from `seed`, scaled by `std`.
pub(crate) fn randn(seed: u64, rows: usize, cols: usize, std: f64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..rows * cols)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            std * z
        })
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// Checks the autograd gradient of the scalar `f(x)` at `x0` against central differences, element
/// by element, with relative tolerance `tol`. Returns the largest gradient magnitude seen, so
/// callers can also assert that it is not trivially zero.
pub(crate) fn check<F>(x0: &Tensor, tol: f64, f: F) -> f64
where
    F: Fn(&Tensor) -> crate::Result<Tensor>,
{
    let x = Var::from_tensor(x0).unwrap();
    let loss = f(x.as_tensor()).unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(x.as_tensor())
        .expect("no gradient reached the input")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let base = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-6;
    let eval = |v: &[f64]| -> f64 {
        let t = Tensor::from_vec(v.to_vec(), x0.shape(), &Device::Cpu).unwrap();
        f(&t).unwrap().to_scalar::<f64>().unwrap()
    };
    let mut max_abs: f64 = 0.0;
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] += h;
        let mut m = base.clone();
        m[i] -= h;
        let num = (eval(&p) - eval(&m)) / (2.0 * h);
        assert!(
            (g[i] - num).abs() <= tol * (1.0 + num.abs()),
            "element {i}: autograd {} vs finite difference {num}",
            g[i]
        );
        max_abs = max_abs.max(g[i].abs());
    }
    max_abs
}
