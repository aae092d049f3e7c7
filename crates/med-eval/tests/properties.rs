//! Property tests of the statistics' invariants.

use med_eval::delong::{delong, CiMethod};
use med_eval::{roc_auc, StratifiedKFold};
use proptest::prelude::*;

/// Labels with at least two of each class, and scores on a coarse grid so that ties are common.
fn labelled_scores(max_n: usize) -> impl Strategy<Value = (Vec<bool>, Vec<f64>)> {
    (4..max_n).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(0i32..20, n),
        )
            .prop_map(|(mut y, s)| {
                // Force two of each class.
                y[0] = true;
                y[1] = true;
                y[2] = false;
                y[3] = false;
                (y, s.into_iter().map(|v| v as f64 / 4.0).collect())
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn reversed_scores_give_one_minus_auc((y, s) in labelled_scores(60)) {
        let a = roc_auc(&y, &s).unwrap();
        let neg: Vec<f64> = s.iter().map(|v| -v).collect();
        let b = roc_auc(&y, &neg).unwrap();
        prop_assert!((a + b - 1.0).abs() < 1e-12);
    }

    #[test]
    fn auc_is_invariant_to_monotone_transforms((y, s) in labelled_scores(60)) {
        let a = roc_auc(&y, &s).unwrap();
        let t: Vec<f64> = s.iter().map(|v| (3.0 * v).exp() + v.powi(3) - 7.0).collect();
        let b = roc_auc(&y, &t).unwrap();
        prop_assert!((a - b).abs() < 1e-12);
        let d = delong(&y, &s).unwrap();
        let e = delong(&y, &t).unwrap();
        prop_assert!((d.variance - e.variance).abs() < 1e-12);
    }

    #[test]
    fn delong_auc_equals_trapezoid_auc((y, s) in labelled_scores(60)) {
        let d = delong(&y, &s).unwrap();
        prop_assert!((d.auc - roc_auc(&y, &s).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn delong_ci_contains_auc((y, s) in labelled_scores(60)) {
        let d = delong(&y, &s).unwrap();
        let ci = d.ci(0.95, CiMethod::Plain).unwrap();
        prop_assert!(ci.contains(d.auc));
        prop_assert!(ci.low >= 0.0 && ci.high <= 1.0);
        if let Some(l) = d.ci(0.95, CiMethod::Logit) {
            prop_assert!(l.contains(d.auc));
        }
    }

    #[test]
    fn delong_ci_shrinks_with_n((y, s) in labelled_scores(30), reps in 2usize..6) {
        // Replicating every sample r times keeps the AUC and divides the variance by about r.
        let d1 = delong(&y, &s).unwrap();
        let yr: Vec<bool> = (0..reps).flat_map(|_| y.iter().copied()).collect();
        let sr: Vec<f64> = (0..reps).flat_map(|_| s.iter().copied()).collect();
        let dr = delong(&yr, &sr).unwrap();
        prop_assert!((d1.auc - dr.auc).abs() < 1e-12);
        prop_assert!(dr.variance <= d1.variance + 1e-15);
        let (w1, wr) = (
            d1.ci(0.95, CiMethod::Plain).unwrap().width(),
            dr.ci(0.95, CiMethod::Plain).unwrap().width(),
        );
        prop_assert!(wr <= w1 + 1e-12);
    }

    #[test]
    fn folds_partition_and_keep_class_rate(
        y in proptest::collection::vec(any::<bool>(), 12..120),
        k in 2usize..7,
        seed in any::<u64>(),
    ) {
        let pos = y.iter().filter(|&&v| v).count();
        let minority = pos.min(y.len() - pos);
        let res = StratifiedKFold::new(k, seed).split(&y);
        if minority < k {
            prop_assert!(res.is_err());
            return Ok(());
        }
        let folds = res.unwrap();
        prop_assert_eq!(folds.len(), k);
        let mut seen = vec![0usize; y.len()];
        for f in &folds {
            for &i in &f.test {
                seen[i] += 1;
            }
            // Train and test are complementary.
            prop_assert_eq!(f.train.len() + f.test.len(), y.len());
            prop_assert!(f.train.iter().all(|i| !f.test.contains(i)));
            // Positives within one sample of the overall rate times the fold size.
            let fold_pos = f.test.iter().filter(|&&i| y[i]).count() as f64;
            let expected = pos as f64 * f.test.len() as f64 / y.len() as f64;
            prop_assert!((fold_pos - expected).abs() <= 1.0,
                "fold positives {} expected {}", fold_pos, expected);
        }
        prop_assert!(seen.iter().all(|&c| c == 1));
        let sizes: Vec<usize> = folds.iter().map(|f| f.test.len()).collect();
        prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn spearman_is_symmetric_bounded_and_rank_invariant(
        pairs in proptest::collection::vec((0i32..12, -50i32..50), 3..40)
    ) {
        let a: Vec<f64> = pairs.iter().map(|p| p.0 as f64).collect();
        let b: Vec<f64> = pairs.iter().map(|p| p.1 as f64 / 7.0).collect();
        // A constant input is an error, not a number; skip those draws.
        if let Ok(r) = med_eval::agreement::spearman(&a, &b) {
            prop_assert!((-1.0..=1.0).contains(&r));
            let back = med_eval::agreement::spearman(&b, &a).unwrap();
            prop_assert!((r - back).abs() < 1e-12);
            let t: Vec<f64> = a.iter().map(|v| (0.5 * v).exp() + v).collect();
            let moved = med_eval::agreement::spearman(&t, &b).unwrap();
            prop_assert!((r - moved).abs() < 1e-12);
        }
    }
}
