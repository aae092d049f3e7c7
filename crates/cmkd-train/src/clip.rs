//! Gradient-norm clipping.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Storage, Tensor, Var};

use crate::{Error, Result};

/// Scales the gradients of `vars` in `grads` so that their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`, with its `1e-6` guard). Returns the norm before clipping.
/// Fails with [`Error::NonFinite`] (naming `step`) when the norm is NaN or infinite, since an update
/// from such gradients would destroy the weights.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[(String, Var)],
    max_norm: f64,
    step: usize,
) -> Result<f64> {
    let (total, coef) = clip_coefficient(grads, vars, max_norm, step)?;
    if coef < 1.0 {
        for (_, v) in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = g.affine(coef, 0.0)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(total)
}

/// What [`clip_grad_norm`] computes without touching the gradients: the global norm and the
/// factor it would scale them by (1 when the norm is within `max_norm`). Pass the factor to
/// [`crate::AdamW::step_with_grad_scale`] to clip inside the optimizer's pass instead of writing
/// scaled copies of every gradient. Same errors as [`clip_grad_norm`].
pub fn clip_coefficient(
    grads: &GradStore,
    vars: &[(String, Var)],
    max_norm: f64,
    step: usize,
) -> Result<(f64, f64)> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(Error::Config {
            name: "max_norm",
            reason: format!("must be positive, got {max_norm}"),
        });
    }
    let total = grad_norm(grads, vars)?;
    if !total.is_finite() {
        let culprit = vars
            .iter()
            .find(|(_, v)| {
                grads.get(v.as_tensor()).is_some_and(|g| {
                    g.to_dtype(DType::F64)
                        .and_then(|g| g.sqr()?.sum_all()?.to_scalar::<f64>())
                        .map(|s| !s.is_finite())
                        .unwrap_or(true)
                })
            })
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        return Err(Error::NonFinite {
            what: format!("gradient of {culprit}"),
            step,
        });
    }
    let coef = max_norm / (total + 1e-6);
    Ok((total, coef.min(1.0)))
}

/// Global L2 norm of the gradients of `vars` (variables without a gradient count as zero).
pub fn grad_norm(grads: &GradStore, vars: &[(String, Var)]) -> Result<f64> {
    let mut sq = 0.0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += sum_squares(g)?;
        }
    }
    Ok(sq.sqrt())
}

/// Sum of squares in f64. Contiguous f32 tensors on the CPU are read in place (one pass, no f64
/// copy: for a large model the copies cost more than the sum).
fn sum_squares(g: &Tensor) -> Result<f64> {
    {
        let (storage, layout) = g.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(v[a..b]
                .iter()
                .map(|x| {
                    let x = *x as f64;
                    x * x
                })
                .sum());
        }
    }
    Ok(g.to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn clips_to_max_norm_and_reports_original() {
        let a = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[3.0f32], &Device::Cpu).unwrap()).unwrap();
        // loss = 3 a0 + 4 b0 -> grads (3, 0) and (4): norm 5.
        let loss = ((a.as_tensor().get(0).unwrap() * 3.0).unwrap()
            + (b.as_tensor().get(0).unwrap() * 4.0).unwrap())
        .unwrap();
        let mut g = loss.backward().unwrap();
        let vars = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
        let n = clip_grad_norm(&mut g, &vars, 0.5, 0).unwrap();
        assert!((n - 5.0).abs() < 1e-6);
        assert!((grad_norm(&g, &vars).unwrap() - 0.5).abs() < 1e-5);
        // Below the limit nothing changes.
        let n2 = clip_grad_norm(&mut g, &vars, 10.0, 0).unwrap();
        assert!((n2 - 0.5).abs() < 1e-5);
        assert!((grad_norm(&g, &vars).unwrap() - 0.5).abs() < 1e-5);
    }

    #[test]
    fn in_place_sum_matches_the_tensor_path() {
        let t = Tensor::new(&[[1.5f32, -2.0, 3.25], [0.1, 7.0, -0.3]], &Device::Cpu).unwrap();
        let direct = sum_squares(&t).unwrap();
        // A transposed view is not contiguous and takes the tensor path.
        let strided = sum_squares(&t.t().unwrap()).unwrap();
        let want = [1.5f64, -2.0, 3.25, 0.1f32 as f64, 7.0, -0.3f32 as f64]
            .iter()
            .map(|x| x * x)
            .sum::<f64>();
        assert!((direct - want).abs() < 1e-12 && (strided - want).abs() < 1e-12);
    }

    #[test]
    fn non_finite_gradient_is_an_error_naming_the_variable() {
        let a = Var::from_tensor(&Tensor::new(&[0.0f32], &Device::Cpu).unwrap()).unwrap();
        let loss = a.as_tensor().sqrt().unwrap().sum_all().unwrap(); // d/da sqrt(a) at 0 = inf
        let mut g = loss.backward().unwrap();
        let vars = vec![("layer.w".to_string(), a)];
        match clip_grad_norm(&mut g, &vars, 1.0, 9) {
            Err(Error::NonFinite { what, step }) => {
                assert!(what.contains("layer.w"));
                assert_eq!(step, 9);
            }
            other => panic!("{other:?}"),
        }
    }
}
