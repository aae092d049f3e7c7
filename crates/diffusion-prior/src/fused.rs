//! CPU kernels with hand-written backward passes for the two element-wise chains that dominate
//! the DALLE2 block's bookkeeping: the gain-only LayerNorm and the SwiGLU gate.
//!
//! Composed of Candle ops, a LayerNorm is nine graph nodes and SwiGLU five (two of them narrows,
//! whose backward pads with zeros); Candle's backward allocates a zero gradient and an accumulated
//! copy for every node, which at the prior's small batch cost about as much as the matrix products.
//! Each kernel here is one node. They compute the same function as the composed ops (up to float
//! reassociation, checked by the tests below) and are used for contiguous f32 tensors on the CPU;
//! anything else takes the composed ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use cmkd_train::kernel::{f32_slice as slice, for_each_row};

/// Whether `x` can take the fused CPU kernels.
pub(crate) fn fusable(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// Row statistics as the composed LayerNorm computes them: mean and `sqrt(var + eps)`.
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let inv_d = 1.0 / x.len() as f32;
    let mean = x.iter().sum::<f32>() * inv_d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() * inv_d;
    (mean, (var + eps).sqrt())
}

/// `(x - mean) / sqrt(var + eps) * g` over the last dimension; `x` `(rows, d)`, `g` `(d,)`.
struct GainNorm {
    eps: f32,
}

impl CustomOp2 for GainNorm {
    fn name(&self) -> &'static str {
        "gain-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        let d = g.len();
        let mut y = vec![0f32; x.len()];
        // Rows are independent: in parallel for the large batches of sampling.
        for_each_row(x, d, &mut y, d, |xr, yr| {
            let (mean, denom) = row_stats(xr, self.eps);
            for ((yv, xv), gv) in yr.iter_mut().zip(xr).zip(g) {
                *yv = (xv - mean) / denom * gv;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = x.dim(0)?;
        let both = x.apply_op3_no_bwd(g, &dy.contiguous()?, &GainNormGrad { eps: self.eps })?;
        let dx = both.narrow(0, 0, rows)?;
        let dg = both.narrow(0, rows, 1)?.squeeze(0)?;
        Ok((Some(dx), Some(dg)))
    }
}

/// Gradients of [`GainNorm`]: `(rows + 1, d)`, the input gradient then the gain gradient.
struct GainNormGrad {
    eps: f32,
}

impl CustomOp3 for GainNormGrad {
    fn name(&self) -> &'static str {
        "gain-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        let dy = slice(s3, l3, self.name())?;
        let d = g.len();
        let rows = x.len() / d;
        let mut out = vec![0f32; x.len() + d];
        let (dx, dg) = out.split_at_mut(x.len());
        let mut xhat = vec![0f32; d];
        for ((xr, dyr), dxr) in x
            .chunks_exact(d)
            .zip(dy.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let (mean, denom) = row_stats(xr, self.eps);
            let rstd = 1.0 / denom;
            let (mut s1, mut s2) = (0f32, 0f32);
            for (((h, xv), dyv), gv) in xhat.iter_mut().zip(xr).zip(dyr).zip(g) {
                *h = (xv - mean) / denom;
                let dh = dyv * gv;
                s1 += dh;
                s2 += dh * *h;
            }
            let (m1, m2) = (s1 / d as f32, s2 / d as f32);
            for ((((dxv, h), dyv), gv), dgv) in
                dxr.iter_mut().zip(&xhat).zip(dyr).zip(g).zip(dg.iter_mut())
            {
                *dxv = rstd * (dyv * gv - m1 - h * m2);
                *dgv += dyv * h;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 1, d))))
    }
}

/// Gain-only LayerNorm of `x` `(..., d)` with gain `g` `(d,)` as one differentiable CPU op.
pub(crate) fn gain_norm(x: &Tensor, g: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let d = *dims.last().unwrap_or(&0);
    let x2 = x.contiguous()?.reshape((x.elem_count() / d.max(1), d))?;
    x2.apply_op2(&g.contiguous()?, GainNorm { eps: eps as f32 })?
        .reshape(dims)
}

/// `a * silu(gate)` for `h = [a, gate]` split in halves of the last dimension, `(rows, 2 I)`.
struct SwiGluGate;

fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

impl CustomOp1 for SwiGluGate {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = slice(s, l, self.name())?;
        let (rows, two_i) = l.shape().dims2()?;
        let inner = two_i / 2;
        let mut y = vec![0f32; rows * inner];
        for_each_row(h, two_i, &mut y, inner, |hr, yr| {
            let (a, gate) = hr.split_at(inner);
            for ((yv, av), gv) in yr.iter_mut().zip(a).zip(gate) {
                *yv = av * silu(*gv);
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((rows, inner))))
    }

    fn bwd(&self, h: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(h.apply_op2_no_bwd(&dy.contiguous()?, &SwiGluGrad)?))
    }
}

/// Gradient of [`SwiGluGate`] with respect to `h`, `(rows, 2 I)`.
struct SwiGluGrad;

impl CustomOp2 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = slice(s1, l1, self.name())?;
        let dy = slice(s2, l2, self.name())?;
        let (rows, two_i) = l1.shape().dims2()?;
        let inner = two_i / 2;
        let mut dh = vec![0f32; rows * two_i];
        for ((hr, dyr), dhr) in h
            .chunks_exact(two_i)
            .zip(dy.chunks_exact(inner))
            .zip(dh.chunks_exact_mut(two_i))
        {
            let (a, gate) = hr.split_at(inner);
            let (da, dg) = dhr.split_at_mut(inner);
            for ((((dav, dgv), av), gv), dyv) in
                da.iter_mut().zip(dg.iter_mut()).zip(a).zip(gate).zip(dyr)
            {
                let s = 1.0 / (1.0 + (-gv).exp());
                *dav = dyv * silu(*gv);
                *dgv = dyv * av * (s * (1.0 + gv * (1.0 - s)));
            }
        }
        Ok((CpuStorage::F32(dh), l1.shape().clone()))
    }
}

/// `a * silu(gate)` where `h = [a, gate]` along the last dimension, as one differentiable CPU op.
pub(crate) fn swiglu(h: &Tensor) -> candle_core::Result<Tensor> {
    let mut dims = h.dims().to_vec();
    let two_i = *dims.last().unwrap_or(&0);
    let h2 = h
        .contiguous()?
        .reshape((h.elem_count() / two_i.max(1), two_i))?;
    if let Some(last) = dims.last_mut() {
        *last = two_i / 2;
    }
    h2.apply_op1(SwiGluGate)?.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Var, D};

    fn var(shape: &[usize], seed: u64, scale: f64) -> Var {
        let mut rng = cmkd_train::rng::stream(seed, "fused");
        Var::from_tensor(
            &cmkd_train::rng::randn(&mut rng, 0.0, scale, shape, DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap()
    }

    /// Value and gradients of `sum(w * f(x)^2)` with a fixed weighting `w`.
    fn run(f: &dyn Fn(&Tensor) -> Tensor, x: &Var, others: &[&Var]) -> (Tensor, Vec<Tensor>) {
        let y = f(x.as_tensor());
        let w = var(y.dims(), 99, 1.0);
        let loss = (y.sqr().unwrap() * w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        let mut grads = vec![g.get(x.as_tensor()).unwrap().clone()];
        for o in others {
            grads.push(g.get(o.as_tensor()).unwrap().clone());
        }
        (y, grads)
    }

    #[test]
    fn gain_norm_matches_the_composed_layer_norm() {
        let x = var(&[2, 3, 16], 1, 3.0);
        let g = var(&[16], 2, 1.0);
        let composed = cmkd_train::LayerNorm::new(Some(g.as_tensor().clone()), None, 1e-5);
        let (y1, g1) = run(&|x| gain_norm(x, g.as_tensor(), 1e-5).unwrap(), &x, &[&g]);
        let (y2, g2) = run(&|x| composed.forward(x).unwrap(), &x, &[&g]);
        assert_eq!(y1.dims(), y2.dims());
        let d = cmkd_train::compare::max_abs_diff(&y1, &y2).unwrap();
        assert!(d < 1e-5, "{d}");
        for (a, b) in g1.iter().zip(&g2) {
            assert_eq!(a.dims(), b.dims());
            let d = cmkd_train::compare::max_abs_diff(a, b).unwrap();
            assert!(d < 1e-4, "{d}");
        }
    }

    #[test]
    fn swiglu_matches_the_composed_gate() {
        let h = var(&[2, 3, 12], 3, 2.0);
        let composed = |h: &Tensor| {
            let a = h.narrow(D::Minus1, 0, 6).unwrap();
            let gate = h.narrow(D::Minus1, 6, 6).unwrap();
            (a * gate.silu().unwrap()).unwrap()
        };
        let (y1, g1) = run(&|h| swiglu(h).unwrap(), &h, &[]);
        let (y2, g2) = run(&composed, &h, &[]);
        assert_eq!(y1.dims(), &[2, 3, 6]);
        let d = cmkd_train::compare::max_abs_diff(&y1, &y2).unwrap();
        assert!(d < 1e-6, "{d}");
        let d = cmkd_train::compare::max_abs_diff(&g1[0], &g2[0]).unwrap();
        assert!(d < 1e-5, "{d}");
    }
}
