//! Numerically stable logistic functions built from differentiable Candle ops.
//!
//! `candle_nn::loss::binary_cross_entropy_with_logit` takes `log(sigmoid(x))` directly, which is
//! `-inf` (and its gradient NaN) for |x| beyond about 17 in f32. These forms never exponentiate a
//! positive number, so they stay finite for any finite logit, and every op has a backward.

use candle_core::Tensor;

use crate::Result;

/// `log(1 + exp(x))`, computed as `max(x, 0) + log(1 + exp(-|x|))`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((x.relu()? + tail)?)
}

/// `log(sigmoid(x)) = -softplus(-x)`.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(softplus(&x.neg()?)?.neg()?)
}

/// `sigmoid(x) = exp(log_sigmoid(x))`; its gradient is finite everywhere (unlike `1 / (1 + exp(-x))`
/// written with autograd, whose gradient is `inf / inf` for very negative `x`).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(log_sigmoid(x)?.exp()?)
}

/// Element-wise binary cross-entropy between logits `x` and targets `y` in `[0, 1]` (hard or soft):
/// `max(x, 0) - x*y + log(1 + exp(-|x|))`. Same shape as the inputs; no reduction.
pub fn bce_with_logits_elementwise(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok((softplus(x)? - (x * y)?)?)
}

/// Element-wise Bernoulli KL divergence `KL(Ber(sigmoid(t)) || Ber(sigmoid(s)))` between teacher
/// logits `t` and student logits `s`, with `log q` and `log(1-q)` taken as log-sigmoids so that it
/// stays finite for saturated logits. Same shape as the inputs; no reduction.
pub fn bernoulli_kl_elementwise(t: &Tensor, s: &Tensor) -> Result<Tensor> {
    let lt1 = log_sigmoid(t)?;
    let lt0 = log_sigmoid(&t.neg()?)?;
    let ls1 = log_sigmoid(s)?;
    let ls0 = log_sigmoid(&s.neg()?)?;
    let q1 = lt1.exp()?;
    let q0 = lt0.exp()?;
    let a = (q1 * (lt1 - ls1)?)?;
    let b = (q0 * (lt0 - ls0)?)?;
    Ok((a + b)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn v(x: &[f64]) -> Tensor {
        Tensor::new(x, &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_closed_forms_and_stays_finite() {
        let x = v(&[-100.0, -2.0, 0.0, 3.0, 100.0]);
        let sp = softplus(&x).unwrap().to_vec1::<f64>().unwrap();
        let expect = [
            0.0,
            (1.0 + (-2f64).exp()).ln(),
            2f64.ln(),
            3.0 + (1.0 + (-3f64).exp()).ln(),
            100.0,
        ];
        for (a, b) in sp.iter().zip(expect) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        let s = sigmoid(&x).unwrap().to_vec1::<f64>().unwrap();
        assert!((s[2] - 0.5).abs() < 1e-15 && (s[3] - 1.0 / (1.0 + (-3f64).exp())).abs() < 1e-15);
        // Saturated logits in f32: finite values and gradients.
        let big = Var::new(&[-60.0f32, 60.0], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1.0f32, 0.0], &Device::Cpu).unwrap();
        let l = bce_with_logits_elementwise(big.as_tensor(), &y)
            .unwrap()
            .sum_all()
            .unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - 120.0).abs() < 1e-3);
        let g = l.backward().unwrap();
        let g = g.get(big.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, vec![-1.0, 1.0]);
        let kl =
            bernoulli_kl_elementwise(&y.affine(80.0, -40.0).unwrap(), big.as_tensor()).unwrap();
        assert!(kl
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|k| k.is_finite() && *k >= 0.0));
    }
}
