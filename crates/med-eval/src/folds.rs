//! Stratified k-fold splits with the semantics of scikit-learn's `StratifiedKFold` (1.9.1,
//! `_make_test_folds`):
//! 1. classes are encoded by order of first appearance;
//! 2. the sorted encoded labels are dealt round-robin to the folds, so that per-class fold counts
//!    (and total fold sizes) differ by at most one;
//! 3. for each class, the list of fold numbers it was dealt is shuffled (when `shuffle`, with one RNG
//!    used across classes in order) and assigned to that class's samples in index order;
//! 4. fold i's test set is the samples with fold number i, in ascending index order; its training
//!    set is the rest.
//!
//! The class balance and the unshuffled folds are identical to scikit-learn's. Shuffled folds cannot
//! match index for index: scikit-learn draws from numpy's MT19937 and we draw from `rand`'s
//! `StdRng`, so the same seed gives a different (equally valid) permutation.
//!
//! One deliberate difference: scikit-learn only warns when `n_splits` exceeds the smallest class;
//! here that is an error ([`EvalError::TooManyFolds`]), since a fold without positives has no AUC.

use crate::error::{EvalError, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// Settings of a stratified k-fold split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StratifiedKFold {
    /// Number of folds (≥ 2).
    pub n_splits: usize,
    /// Whether to shuffle each class's fold assignment.
    pub shuffle: bool,
    /// Seed of the shuffle (ignored without `shuffle`).
    pub seed: u64,
}

/// One train / test split; indices ascend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Indices of the training samples.
    pub train: Vec<usize>,
    /// Indices of the test samples.
    pub test: Vec<usize>,
}

impl StratifiedKFold {
    /// A splitter with `n_splits` folds, shuffled with `seed`.
    pub fn new(n_splits: usize, seed: u64) -> Self {
        Self {
            n_splits,
            shuffle: true,
            seed,
        }
    }

    /// The fold number (0-based) of every sample.
    pub fn test_fold_of<T: PartialEq + Debug>(&self, y: &[T]) -> Result<Vec<usize>> {
        let k = self.n_splits;
        if k < 2 {
            return Err(EvalError::InvalidParameter {
                name: "n_splits",
                reason: format!("must be at least 2, got {k}"),
            });
        }
        if y.is_empty() {
            return Err(EvalError::Empty { what: "labels" });
        }
        if k > y.len() {
            return Err(EvalError::InvalidParameter {
                name: "n_splits",
                reason: format!("{k} folds for only {} samples", y.len()),
            });
        }
        // Encode by first appearance.
        let mut classes: Vec<&T> = Vec::new();
        let enc: Vec<usize> = y
            .iter()
            .map(|v| match classes.iter().position(|c| *c == v) {
                Some(i) => i,
                None => {
                    classes.push(v);
                    classes.len() - 1
                }
            })
            .collect();
        let n_classes = classes.len();
        let mut counts = vec![0usize; n_classes];
        for &e in &enc {
            counts[e] += 1;
        }
        let (min_class, &min_count) = counts
            .iter()
            .enumerate()
            .min_by_key(|(_, &c)| c)
            .expect("at least one class");
        if k > min_count {
            return Err(EvalError::TooManyFolds {
                n_splits: k,
                class: format!("{:?}", classes[min_class]),
                count: min_count,
            });
        }
        // Round-robin deal of the sorted labels: position p of the sorted order goes to fold p % k.
        // allocation[class][fold] counts that class's samples dealt to the fold.
        let mut allocation = vec![vec![0usize; k]; n_classes];
        let mut p = 0usize;
        for (alloc, &c) in allocation.iter_mut().zip(&counts) {
            for _ in 0..c {
                alloc[p % k] += 1;
                p += 1;
            }
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut test_fold = vec![0usize; y.len()];
        for (class, alloc) in allocation.iter().enumerate() {
            let mut folds_for_class: Vec<usize> = alloc
                .iter()
                .enumerate()
                .flat_map(|(f, &count)| std::iter::repeat_n(f, count))
                .collect();
            if self.shuffle {
                folds_for_class.shuffle(&mut rng);
            }
            let members = enc.iter().enumerate().filter(|(_, &e)| e == class);
            for ((i, _), f) in members.zip(folds_for_class) {
                test_fold[i] = f;
            }
        }
        Ok(test_fold)
    }

    /// The `n_splits` train / test splits of samples labelled `y` (any class type).
    pub fn split<T: PartialEq + Debug>(&self, y: &[T]) -> Result<Vec<Fold>> {
        let test_fold = self.test_fold_of(y)?;
        Ok((0..self.n_splits)
            .map(|f| {
                let (test, train): (Vec<usize>, Vec<usize>) =
                    (0..y.len()).partition(|&i| test_fold[i] == f);
                Fold { train, test }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshuffled_folds_are_balanced() {
        // 30 samples, 8 positives, 6 folds (the shape of kd-eval-reference.md §3; exact index
        // parity with scikit-learn is checked against fixtures in tests/parity.rs).
        let mut y = vec![0u8; 30];
        for i in [0, 4, 8, 11, 15, 22, 26, 29] {
            y[i] = 1;
        }
        let folds = StratifiedKFold {
            n_splits: 6,
            shuffle: false,
            seed: 0,
        }
        .split(&y)
        .unwrap();
        let sizes: Vec<usize> = folds.iter().map(|f| f.test.len()).collect();
        assert_eq!(sizes, vec![5; 6]);
        for f in &folds {
            let pos = f.test.iter().filter(|&&i| y[i] == 1).count();
            assert!(pos == 1 || pos == 2);
        }
    }

    #[test]
    fn too_many_folds_is_typed() {
        let y = [true, true, false, false, false];
        let r = StratifiedKFold::new(3, 0).split(&y);
        assert!(matches!(r, Err(EvalError::TooManyFolds { count: 2, .. })));
        let r = StratifiedKFold::new(1, 0).split(&y);
        assert!(matches!(r, Err(EvalError::InvalidParameter { .. })));
    }

    #[test]
    fn seed_changes_shuffle_but_not_balance() {
        let y: Vec<bool> = (0..40).map(|i| i % 4 == 0).collect();
        let a = StratifiedKFold::new(5, 1).split(&y).unwrap();
        let b = StratifiedKFold::new(5, 2).split(&y).unwrap();
        let a2 = StratifiedKFold::new(5, 1).split(&y).unwrap();
        assert_eq!(a, a2);
        assert_ne!(a, b);
        for f in a.iter().chain(&b) {
            assert_eq!(f.test.iter().filter(|&&i| y[i]).count(), 2);
        }
    }
}
