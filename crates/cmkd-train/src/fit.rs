//! The one training loop of the workspace: epochs of batches with a progress bar, per-epoch
//! numbers, a callback that may stop training, and resumption part-way through an epoch.
//!
//! What differs between trainers stays with them, behind [`Steps`]: how an epoch's batches are
//! drawn (a per-epoch permutation, class-stratified batches, one shuffled order carried across
//! epochs), what a step computes, and how an epoch's numbers are summarised. The diffusion prior's
//! `Trainer`, kd-losses' `Distiller` and cxr-encoder's `ClassifierTrainer` all run through [`fit`].

use crate::progress;

/// What a callback tells the loop after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop after this epoch.
    Stop,
}

/// One trainer's epochs, as the loop drives them.
pub trait Steps {
    /// Numbers of one optimiser step.
    type Step;
    /// Numbers of one epoch.
    type Epoch;
    /// The trainer's error type.
    type Error;

    /// The batches (row indices) of epoch `epoch`, in the order they are stepped.
    fn batches(&mut self, epoch: usize) -> Result<Vec<Vec<usize>>, Self::Error>;

    /// One optimiser step on the rows `rows`.
    fn step(&mut self, rows: &[usize]) -> Result<Self::Step, Self::Error>;

    /// The loss of a step, shown on the progress bar.
    fn loss(step: &Self::Step) -> f64;

    /// Closes epoch `epoch` from the numbers of its steps (in step order).
    fn end_epoch(
        &mut self,
        epoch: usize,
        steps: Vec<Self::Step>,
    ) -> Result<Self::Epoch, Self::Error>;
}

/// Which epochs [`fit`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The first epoch to run.
    pub start_epoch: usize,
    /// One past the last epoch.
    pub epochs: usize,
    /// Batches of `start_epoch` already stepped (a checkpoint written part-way through it).
    pub skip: usize,
    /// Steps of one epoch (for the progress bar only).
    pub steps_per_epoch: usize,
    /// The progress bar's name.
    pub name: &'a str,
}

/// Runs the epochs of `plan` on `steps`, calling `on_epoch` after each; returns every epoch's
/// numbers. An epoch after which `on_epoch` says [`Control::Stop`] is the last.
pub fn fit<S: Steps>(
    steps: &mut S,
    plan: Plan<'_>,
    on_epoch: &mut dyn FnMut(&S::Epoch) -> Control,
) -> Result<Vec<S::Epoch>, S::Error> {
    let total = (plan.epochs * plan.steps_per_epoch) as u64;
    let bar = progress::bar(total, plan.name);
    bar.set_position((plan.start_epoch * plan.steps_per_epoch + plan.skip) as u64);
    let mut history = Vec::with_capacity(plan.epochs.saturating_sub(plan.start_epoch));
    for epoch in plan.start_epoch..plan.epochs {
        let batches = steps.batches(epoch)?;
        let skip = if epoch == plan.start_epoch {
            plan.skip
        } else {
            0
        };
        let mut numbers = Vec::with_capacity(batches.len().saturating_sub(skip));
        for rows in batches.iter().skip(skip) {
            let s = steps.step(rows)?;
            bar.set_prefix(format!("loss {:.4}", S::loss(&s)));
            bar.inc(1);
            numbers.push(s);
        }
        let e = steps.end_epoch(epoch, numbers)?;
        let control = on_epoch(&e);
        history.push(e);
        if control == Control::Stop {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the loop asks for.
    struct Log {
        seen: Vec<(usize, Vec<usize>)>,
        epoch: usize,
    }

    impl Steps for Log {
        type Step = f64;
        type Epoch = (usize, usize);
        type Error = String;

        fn batches(&mut self, epoch: usize) -> Result<Vec<Vec<usize>>, String> {
            self.epoch = epoch;
            Ok(vec![vec![0, 1], vec![2, 3], vec![4]])
        }

        fn step(&mut self, rows: &[usize]) -> Result<f64, String> {
            self.seen.push((self.epoch, rows.to_vec()));
            Ok(rows.len() as f64)
        }

        fn loss(step: &f64) -> f64 {
            *step
        }

        fn end_epoch(&mut self, epoch: usize, steps: Vec<f64>) -> Result<(usize, usize), String> {
            Ok((epoch, steps.len()))
        }
    }

    #[test]
    fn resumes_part_way_and_stops_when_told() {
        let mut log = Log {
            seen: Vec::new(),
            epoch: 0,
        };
        let plan = Plan {
            start_epoch: 1,
            epochs: 5,
            skip: 2,
            steps_per_epoch: 3,
            name: "test",
        };
        let h = fit(&mut log, plan, &mut |e| {
            if e.0 == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        // Epoch 1 resumes after its first two batches; epoch 2 runs whole and is the last.
        assert_eq!(h, vec![(1, 1), (2, 3)]);
        assert_eq!(log.seen[0], (1, vec![4]));
        assert_eq!(log.seen.len(), 4);
    }
}
