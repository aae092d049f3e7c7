//! Reproducible weight initialisation.
//!
//! A `VarBuilder` over a plain `VarMap` initialises new variables from Candle's device generator,
//! which cannot be seeded on the CPU: two runs start from different weights. [`seeded_var_builder`]
//! returns a builder over the same `VarMap` that draws each new variable from a generator seeded by
//! `(seed, variable name)`, so the initial weights depend on the seed and the names only, not on the
//! order in which the model asks for them.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

use crate::rng;

struct SeededBackend {
    map: VarMap,
    seed: u64,
}

fn draw(
    init: Init,
    shape: &Shape,
    name: &str,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let mut g = rng::stream(seed, name);
    let to_candle = |e: crate::Error| candle_core::Error::wrap(e);
    match init {
        Init::Const(c) => Tensor::ones(shape, dtype, dev)?.affine(c, 0.0),
        Init::Randn { mean, stdev } => {
            rng::randn(&mut g, mean, stdev, shape.clone(), dtype, dev).map_err(to_candle)
        }
        Init::Uniform { lo, up } => {
            rng::uniform(&mut g, lo, up, shape.clone(), dtype, dev).map_err(to_candle)
        }
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = match fan {
                FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
            };
            let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    rng::uniform(&mut g, -b, b, shape.clone(), dtype, dev).map_err(to_candle)
                }
                NormalOrUniform::Normal => {
                    rng::randn(&mut g, 0.0, std, shape.clone(), dtype, dev).map_err(to_candle)
                }
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "shape mismatch on {name}: asked {s:?}, have {:?}",
                    v.shape()
                )
            }
            return Ok(v.as_tensor().clone());
        }
        let var = Var::from_tensor(&draw(h, &s, name, self.seed, dtype, dev)?)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no variable named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// A `VarBuilder` whose new variables are trainable `Var`s stored in `map` and initialised
/// reproducibly from `seed` and their names. Existing variables in `map` are returned as they are,
/// so building a model over a loaded `VarMap` keeps the loaded weights.
pub fn seeded_var_builder(
    map: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend: Box<dyn SimpleBackend> = Box::new(SeededBackend {
        map: map.clone(),
        seed,
    });
    VarBuilder::from_backend(backend, dtype, device.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(seed: u64, order_ab: bool) -> Vec<(String, Vec<f32>)> {
        let map = VarMap::new();
        let vb = seeded_var_builder(&map, seed, DType::F32, &Device::Cpu);
        let names = if order_ab { ["a", "b"] } else { ["b", "a"] };
        for n in names {
            candle_nn::linear(4, 3, vb.pp(n)).unwrap();
        }
        let mut out: Vec<_> = map
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap(),
                )
            })
            .collect();
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    }

    #[test]
    fn same_seed_same_weights_regardless_of_order() {
        assert_eq!(build(3, true), build(3, false));
        assert_ne!(build(3, true), build(4, true));
        let w = build(3, true);
        assert_eq!(w.len(), 4);
        // Kaiming-normal weights for fan-in 4 are not all equal and are bounded sensibly.
        let aw = &w.iter().find(|(k, _)| k == "a.weight").unwrap().1;
        assert!(aw.iter().any(|v| *v != aw[0]));
        assert!(aw.iter().all(|v| v.abs() < 5.0));
    }

    #[test]
    fn existing_vars_are_reused() {
        let map = VarMap::new();
        let vb = seeded_var_builder(&map, 1, DType::F32, &Device::Cpu);
        let l1 = vb.get((2, 2), "w").unwrap();
        let l2 = vb.get((2, 2), "w").unwrap();
        assert_eq!(l1.to_vec2::<f32>().unwrap(), l2.to_vec2::<f32>().unwrap());
        assert!(vb.get((3, 2), "w").is_err());
    }
}
