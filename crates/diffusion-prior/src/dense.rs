//! A linear layer whose weight gradient is computed in the weight's own layout.
//!
//! `candle_nn::Linear` multiplies by `weight.t()`: in backward the weight's gradient is first
//! formed for the transposed view, then accumulated through the transpose node as a strided copy,
//! and every reshape around the product adds one more accumulation. For the prior's 48.8M
//! parameters at small batch that bookkeeping cost as much as the products themselves. On the CPU
//! this layer is one custom op `x @ w^T` whose backward returns `grad @ w` and `grad^T @ x`
//! directly; elsewhere it falls back to the composed ops. The forward is the same product either
//! way.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Module, Shape, Tensor};

/// `y = x w^T (+ b)` with PyTorch's `(out, in)` weight layout.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }
}

/// `x (rows, in) @ w (out, in)^T`.
struct MatmulWt;

impl CustomOp2 for MatmulWt {
    fn name(&self) -> &'static str {
        "matmul-wt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, k) = l1.shape().dims2()?;
        let (out, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("matmul-wt: input width {k}, weight width {k2}")
        }
        let wt = l2.transpose(0, 1)?;
        let y = s1.matmul(s2, (1, rows, out, k), l1, &wt)?;
        Ok((y, Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = grad.matmul(&w.detach())?;
        let gw = grad.t()?.matmul(&x.detach())?;
        Ok((Some(gx), Some(gw)))
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let k = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / k.max(1);
        let x2 = x.contiguous()?.reshape((rows, k))?;
        let y = if x.device().is_cpu() {
            x2.apply_op2(&self.weight, MatmulWt)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(out_dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_linear_forward_and_backward() {
        let dev = Device::Cpu;
        let mut rng = cmkd_train::rng::stream(3, "dense");
        let x = Var::from_tensor(
            &cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (2, 3, 5), candle_core::DType::F32, &dev)
                .unwrap(),
        )
        .unwrap();
        let w = Var::from_tensor(
            &cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (4, 5), candle_core::DType::F32, &dev)
                .unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(
            &cmkd_train::rng::randn(&mut rng, 0.0, 1.0, 4, candle_core::DType::F32, &dev).unwrap(),
        )
        .unwrap();
        let weights = Tensor::new(&[1.0f32, -2.0, 0.5, 3.0], &dev).unwrap();
        let ours = Dense::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let reference = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let run = |m: &dyn Module| {
            let y = m.forward(x.as_tensor()).unwrap();
            let loss = y
                .sqr()
                .unwrap()
                .broadcast_mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap();
            let g = loss.backward().unwrap();
            let grads: Vec<Tensor> = [&x, &w, &b]
                .iter()
                .map(|v| g.get(v.as_tensor()).unwrap().clone())
                .collect();
            (y, grads)
        };
        let (y1, g1) = run(&ours);
        let (y2, g2) = run(&reference);
        assert_eq!(y1.dims(), &[2, 3, 4]);
        assert_eq!(cmkd_train::compare::max_abs_diff(&y1, &y2).unwrap(), 0.0);
        for (a, b) in g1.iter().zip(&g2) {
            assert_eq!(a.dims(), b.dims());
            let d = cmkd_train::compare::max_abs_diff(a, b).unwrap();
            assert!(d < 1e-5, "{d}");
        }
    }
}
