//! Bad input gives typed errors, never a panic.

use med_eval::bootstrap::{bootstrap_auc_ci, BootstrapConfig};
use med_eval::delong::{delong, delong_covariance, delong_test, test_from_covariance};
use med_eval::tsne::{tsne, TsneConfig, TsneMethod};
use med_eval::{
    brier_score, evaluate_folds, roc_curve, youden_threshold, EvalError, FoldPredictions,
    StratifiedKFold,
};

#[test]
fn single_class() {
    let y = [false, false, false];
    let s = [0.1, 0.2, 0.3];
    for r in [
        roc_curve(&y, &s, true).map(|_| ()),
        delong(&y, &s).map(|_| ()),
        youden_threshold(&y, &s).map(|_| ()),
        bootstrap_auc_ci(&y, &s, &BootstrapConfig::default()).map(|_| ()),
    ] {
        assert!(matches!(
            r,
            Err(EvalError::SingleClass {
                positives: 0,
                negatives: 3
            })
        ));
    }
}

#[test]
fn nan_scores() {
    let y = [true, false, true, false];
    let s = [0.1, f64::NAN, 0.3, 0.2];
    assert!(matches!(
        delong_test(&y, &[0.1, 0.2, 0.3, 0.4], &s),
        Err(EvalError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        brier_score(&y, &s),
        Err(EvalError::NonFinite { index: 1, .. })
    ));
}

#[test]
fn mismatched_lengths() {
    let y = [true, false, true, false];
    let e = delong_covariance(&y, &[&[0.1, 0.2, 0.3, 0.4], &[0.1, 0.2]]).unwrap_err();
    assert!(matches!(e, EvalError::LengthMismatch { right_len: 2, .. }));
    assert!(e.to_string().contains("`scores` has 2"));
}

#[test]
fn k_larger_than_minority_class() {
    let y = [true, false, false, false, true, false, false, false, false];
    let e = StratifiedKFold::new(3, 0).split(&y).unwrap_err();
    assert!(matches!(
        e,
        EvalError::TooManyFolds {
            n_splits: 3,
            count: 2,
            ..
        }
    ));
    assert!(e.to_string().contains("true has 2 samples"), "{e}");
}

#[test]
fn other_bad_input() {
    let y = [true, false, true, false];
    let s = [0.9, 0.1, 0.8, 0.2];
    let cov = delong_covariance(&y, &[&s]).unwrap();
    assert!(matches!(
        test_from_covariance(&cov, 0, 1),
        Err(EvalError::InvalidParameter { .. })
    ));
    assert!(matches!(evaluate_folds(&[]), Err(EvalError::Empty { .. })));
    let bad = FoldPredictions {
        train_labels: vec![true, false],
        train_scores: vec![0.5, 0.4],
        test_indices: vec![0],
        test_labels: vec![true, false],
        test_scores: vec![0.3, 0.2],
    };
    assert!(matches!(
        evaluate_folds(&[bad]),
        Err(EvalError::LengthMismatch { .. })
    ));
    let cfg = BootstrapConfig {
        replicates: 1,
        ..BootstrapConfig::default()
    };
    assert!(matches!(
        bootstrap_auc_ci(&y, &s, &cfg),
        Err(EvalError::InvalidParameter {
            name: "replicates",
            ..
        })
    ));
    let t = TsneConfig {
        method: TsneMethod::Exact,
        perplexity: 1.0,
        progress: false,
        ..TsneConfig::default()
    };
    assert!(matches!(
        tsne(&vec![0.0f32; 20_002], 2, &t),
        Err(EvalError::InvalidParameter { name: "method", .. })
    ));
}
