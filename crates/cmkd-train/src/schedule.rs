//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

/// A learning rate as a function of the optimizer step (0 for the first step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Linear ramp from 0 to the base rate over `warmup_steps`, then constant (DALLE2-pytorch's
    /// `pytorch_warmup.LinearWarmup` followed by a constant `LambdaLR`).
    LinearWarmup {
        /// Number of steps of the ramp.
        warmup_steps: usize,
    },
    /// Linear warm-up, then cosine decay to `min_ratio * base` at `total_steps`.
    WarmupCosine {
        /// Number of steps of the ramp.
        warmup_steps: usize,
        /// Step at which the decay ends.
        total_steps: usize,
        /// Final rate as a fraction of the base rate.
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// Learning rate for `step` given the `base` rate.
    pub fn lr(&self, base: f64, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::LinearWarmup { warmup_steps } => base * warmup_factor(step, warmup_steps),
            LrSchedule::WarmupCosine {
                warmup_steps,
                total_steps,
                min_ratio,
            } => {
                if step < warmup_steps {
                    return base * warmup_factor(step, warmup_steps);
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = ((step - warmup_steps) as f64 / span).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                base * (min_ratio + (1.0 - min_ratio) * cos)
            }
        }
    }
}

/// `pytorch_warmup.LinearWarmup`: the factor at the k-th step (1-based) is `min(1, k / period)`.
fn warmup_factor(step: usize, warmup_steps: usize) -> f64 {
    if warmup_steps == 0 {
        1.0
    } else {
        ((step + 1) as f64 / warmup_steps as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn warmup_values() {
        let s = LrSchedule::LinearWarmup { warmup_steps: 50 };
        assert!((s.lr(1.1e-4, 0) - 1.1e-4 / 50.0).abs() < 1e-15);
        assert!((s.lr(1.1e-4, 49) - 1.1e-4).abs() < 1e-15);
        assert_eq!(s.lr(1.1e-4, 1000), 1.1e-4);
        assert_eq!(LrSchedule::Constant.lr(0.3, 7), 0.3);
    }

    proptest! {
        #[test]
        fn cosine_is_bounded_and_non_increasing_after_warmup(w in 0usize..20, extra in 1usize..200, min in 0.0f64..0.5) {
            let s = LrSchedule::WarmupCosine { warmup_steps: w, total_steps: w + extra, min_ratio: min };
            let mut prev = f64::INFINITY;
            for step in w..w + extra + 5 {
                let lr = s.lr(1.0, step);
                prop_assert!(lr <= prev + 1e-12);
                prop_assert!(lr >= min - 1e-12 && lr <= 1.0 + 1e-12);
                prev = lr;
            }
        }
    }
}
