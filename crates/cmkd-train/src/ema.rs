//! Exponential moving average of weights, with ema_pytorch's schedule.

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Settings of [`Ema`]; defaults are ema_pytorch 0.8's, which DALLE2-pytorch's prior trainer uses
/// (its own `ema_*` options never reach the EMA object).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// Upper bound of the decay.
    pub beta: f64,
    /// Until this many updates, the average is a plain copy of the weights.
    pub update_after_step: usize,
    /// Average only every this many updates.
    pub update_every: usize,
    /// Warm-up: decay = 1 - (1 + epoch / inv_gamma)^-power, clamped to [min_value, beta].
    pub inv_gamma: f64,
    /// See `inv_gamma`.
    pub power: f64,
    /// Lower bound of the decay.
    pub min_value: f64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self {
            beta: 0.9999,
            update_after_step: 100,
            update_every: 10,
            inv_gamma: 1.0,
            power: 2.0 / 3.0,
            min_value: 0.0,
        }
    }
}

/// Shadow copies of a model's variables, updated after each optimizer step.
#[derive(Debug)]
pub struct Ema {
    config: EmaConfig,
    step: usize,
    initted: bool,
    /// (name, online variable, shadow value)
    entries: Vec<(String, Var, Tensor)>,
}

impl Ema {
    /// Tracks `vars` (the online model). The shadow starts as a copy.
    pub fn new(vars: &[(String, Var)], config: EmaConfig) -> Result<Self> {
        if !(0.0..=1.0).contains(&config.beta)
            || config.update_every == 0
            || config.inv_gamma <= 0.0
        {
            return Err(Error::Config {
                name: "ema",
                reason: format!("invalid settings {config:?}"),
            });
        }
        let entries = vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.clone(), v.as_tensor().copy()?.detach())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            step: 0,
            initted: false,
            entries,
        })
    }

    /// The decay that the next averaging would use (ema_pytorch's `get_current_decay`).
    pub fn current_decay(&self) -> f64 {
        let c = &self.config;
        let epoch = self.step as f64 - c.update_after_step as f64 - 1.0;
        if epoch <= 0.0 {
            return 0.0;
        }
        let value = 1.0 - (1.0 + epoch / c.inv_gamma).powf(-c.power);
        value.clamp(c.min_value, c.beta)
    }

    /// One update, to be called after every optimizer step.
    pub fn update(&mut self) -> Result<()> {
        let step = self.step;
        self.step += 1;
        if !self.initted {
            self.copy_from_online()?;
            self.initted = true;
            return Ok(());
        }
        if step % self.config.update_every != 0 {
            return Ok(());
        }
        if step <= self.config.update_after_step {
            return self.copy_from_online();
        }
        let decay = self.current_decay();
        for (_, var, shadow) in &mut self.entries {
            // shadow.lerp(online, 1 - decay)
            let online = var.as_tensor().detach();
            *shadow = ((&*shadow * decay)? + (online * (1.0 - decay))?)?;
        }
        Ok(())
    }

    fn copy_from_online(&mut self) -> Result<()> {
        for (_, var, shadow) in &mut self.entries {
            *shadow = var.as_tensor().copy()?.detach();
        }
        Ok(())
    }

    /// Number of updates so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The shadow weights by name.
    pub fn shadow(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, _, t)| (n.as_str(), t))
    }

    /// Writes the shadow weights into `target` variables with the same names (e.g. an evaluation copy
    /// of the model). Fails naming the first tracked variable that `target` lacks.
    pub fn copy_to(&self, target: &[(String, Var)]) -> Result<()> {
        for (name, _, shadow) in &self.entries {
            let Some((_, v)) = target.iter().find(|(n, _)| n == name) else {
                return Err(Error::Config {
                    name: "ema target",
                    reason: format!("no variable `{name}`"),
                });
            };
            v.set(shadow)?;
        }
        Ok(())
    }

    /// Replaces the shadow weights and the step counter, e.g. from a checkpoint.
    pub fn load(
        &mut self,
        shadow: &std::collections::HashMap<String, Tensor>,
        step: usize,
    ) -> Result<()> {
        for (name, var, s) in &mut self.entries {
            let t = shadow.get(name).ok_or_else(|| Error::Config {
                name: "ema state",
                reason: format!("missing tensor `{name}`"),
            })?;
            if t.shape() != var.shape() {
                return Err(Error::Config {
                    name: "ema state",
                    reason: format!(
                        "`{name}` has shape {:?}, variable has {:?}",
                        t.shape(),
                        var.shape()
                    ),
                });
            }
            *s = t.to_device(var.device())?.to_dtype(var.dtype())?;
        }
        self.step = step;
        self.initted = step > 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// ema_pytorch 0.8.3, traced by hand for update_after_step=2, update_every=1: updates 0..=2 copy,
    /// update 3 averages with decay 1 - (1 + 1)^(-2/3) (the counter is already 4 when decay is read).
    #[test]
    fn follows_ema_pytorch_schedule() {
        let v = Var::from_tensor(&Tensor::new(&[0.0f32], &Device::Cpu).unwrap()).unwrap();
        let cfg = EmaConfig {
            update_after_step: 2,
            update_every: 1,
            ..Default::default()
        };
        let mut ema = Ema::new(&[("w".into(), v.clone())], cfg).unwrap();
        for k in 0..3 {
            v.set(&Tensor::new(&[k as f32], &Device::Cpu).unwrap())
                .unwrap();
            ema.update().unwrap();
            assert_eq!(
                ema.shadow().next().unwrap().1.to_vec1::<f32>().unwrap(),
                [k as f32]
            );
        }
        v.set(&Tensor::new(&[10.0f32], &Device::Cpu).unwrap())
            .unwrap();
        let d = 1.0 - 2f64.powf(-2.0 / 3.0);
        ema.update().unwrap();
        let want = 2.0 * d + 10.0 * (1.0 - d);
        let got = ema.shadow().next().unwrap().1.to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // Decay is capped at beta.
        ema.step = 10_000_000;
        assert_eq!(ema.current_decay(), 0.9999);
    }

    #[test]
    fn copy_to_and_load() {
        let v = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let mut ema = Ema::new(&[("w".into(), v.clone())], EmaConfig::default()).unwrap();
        let eval =
            Var::from_tensor(&Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap())
                .unwrap();
        ema.copy_to(&[("w".into(), eval.clone())]).unwrap();
        assert_eq!(eval.as_tensor().to_vec1::<f32>().unwrap(), [1.0, 2.0]);
        assert!(ema.copy_to(&[("other".into(), eval)]).is_err());
        let mut m = std::collections::HashMap::new();
        m.insert(
            "w".to_string(),
            Tensor::new(&[5.0f32, 6.0], &Device::Cpu).unwrap(),
        );
        ema.load(&m, 42).unwrap();
        assert_eq!(ema.step_count(), 42);
        m.insert(
            "w".to_string(),
            Tensor::new(&[5.0f32], &Device::Cpu).unwrap(),
        );
        assert!(ema.load(&m, 1).is_err());
    }
}
