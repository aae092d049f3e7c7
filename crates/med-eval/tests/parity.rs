//! Parity with scikit-learn 1.9.1 and a numpy port of fast DeLong (fixtures made by
//! tools/eval/make_fixtures.py; see the versions recorded in the JSON).

use med_eval::calibration::calibration;
use med_eval::delong::{delong, delong_test, CiMethod};
use med_eval::tsne::trustworthiness;
use med_eval::{brier_score, roc_auc, roc_curve, youden_threshold, Confusion, StratifiedKFold};
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("fixtures/sklearn_parity.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() == 1)
        .collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * (1.0 + b.abs()),
        "{what}: {a} vs {b} (tol {tol})"
    );
}

#[test]
fn roc_auc_and_delong_match_reference() {
    let fx = fixture();
    for case in fx["roc_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y = bools(&case["labels"]);
        let a = f64s(&case["scores_a"]);
        let b = f64s(&case["scores_b"]);
        for (key, s) in [("a", &a), ("b", &b)] {
            let r = &case[key];
            let tag = format!("{name}/{key}");
            close(
                roc_auc(&y, s).unwrap(),
                r["sklearn_auc"].as_f64().unwrap(),
                1e-12,
                &tag,
            );
            let d = delong(&y, s).unwrap();
            close(d.auc, r["auc"].as_f64().unwrap(), 1e-12, &tag);
            close(d.variance, r["variance"].as_f64().unwrap(), 1e-12, &tag);
            let plain = d.ci(0.95, CiMethod::Plain).unwrap();
            let want = f64s(&r["ci_plain"]);
            close(plain.low, want[0], 1e-12, &tag);
            close(plain.high, want[1], 1e-12, &tag);
            match (d.ci(0.95, CiMethod::Logit), r["ci_logit"].as_array()) {
                (Some(ci), Some(w)) => {
                    close(ci.low, w[0].as_f64().unwrap(), 1e-12, &tag);
                    close(ci.high, w[1].as_f64().unwrap(), 1e-12, &tag);
                }
                (None, None) => {}
                other => panic!("{tag}: logit CI presence differs: {other:?}"),
            }
            let yp = youden_threshold(&y, s).unwrap();
            match r["youden_threshold"].as_f64() {
                Some(t) => assert_eq!(yp.threshold, t, "{tag}"),
                None => assert!(yp.threshold.is_infinite(), "{tag}"),
            }
            close(yp.j, r["youden_j"].as_f64().unwrap(), 1e-12, &tag);
            let c = Confusion::at(&y, s, yp.threshold).unwrap();
            assert_eq!(c.tp as i64, r["youden_tp"].as_i64().unwrap(), "{tag}");
            assert_eq!(c.fp as i64, r["youden_fp"].as_i64().unwrap(), "{tag}");
        }
        let t = delong_test(&y, &a, &b).unwrap();
        let cov = med_eval::delong_covariance(&y, &[&a, &b]).unwrap();
        close(
            cov.covariance[0][1],
            case["covariance_ab"].as_f64().unwrap(),
            1e-12,
            name,
        );
        match case["z"].as_f64() {
            Some(z) => close(t.z, z, 1e-9, name),
            None => assert!(t.z.is_infinite(), "{name}"),
        }
        close(t.p_value, case["p_value"].as_f64().unwrap(), 1e-9, name);

        for (kind, drop) in [("full", false), ("drop", true)] {
            let want = &case["roc_a"][kind];
            let roc = roc_curve(&y, &a, drop).unwrap();
            let (wf, wt) = (f64s(&want["fpr"]), f64s(&want["tpr"]));
            assert_eq!(roc.fpr.len(), wf.len(), "{name} {kind} points");
            for i in 0..wf.len() {
                close(roc.fpr[i], wf[i], 1e-15, name);
                close(roc.tpr[i], wt[i], 1e-15, name);
            }
            let wth = want["thresholds"].as_array().unwrap();
            assert!(wth[0].is_null() && roc.thresholds[0].is_infinite());
            for (got, w) in roc.thresholds[1..].iter().zip(&wth[1..]) {
                assert_eq!(*got, w.as_f64().unwrap(), "{name} {kind} threshold");
            }
        }
    }
}

#[test]
fn stratified_kfold_unshuffled_matches_sklearn() {
    let fx = fixture();
    for case in fx["stratified_kfold"].as_array().unwrap() {
        let labels: Vec<i64> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let k = case["n_splits"].as_u64().unwrap() as usize;
        let folds = StratifiedKFold {
            n_splits: k,
            shuffle: false,
            seed: 0,
        }
        .split(&labels)
        .unwrap();
        let want: Vec<Vec<usize>> = case["test_folds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect()
            })
            .collect();
        let got: Vec<Vec<usize>> = folds.into_iter().map(|f| f.test).collect();
        assert_eq!(got, want, "{}", case["name"]);
    }
}

#[test]
fn shuffled_folds_keep_sklearn_class_counts() {
    // Shuffled indices cannot match numpy's MT19937, but the per-fold class counts are fixed by the
    // round-robin allocation and must equal the unshuffled (sklearn-verified) ones.
    let fx = fixture();
    for case in fx["stratified_kfold"].as_array().unwrap() {
        let labels: Vec<i64> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let k = case["n_splits"].as_u64().unwrap() as usize;
        let counts = |folds: &[med_eval::Fold]| -> Vec<Vec<usize>> {
            folds
                .iter()
                .map(|f| {
                    (0..3)
                        .map(|c| f.test.iter().filter(|&&i| labels[i] == c).count())
                        .collect()
                })
                .collect()
        };
        let plain = StratifiedKFold {
            n_splits: k,
            shuffle: false,
            seed: 0,
        }
        .split(&labels)
        .unwrap();
        for seed in 0..5 {
            let shuffled = StratifiedKFold::new(k, seed).split(&labels).unwrap();
            assert_eq!(counts(&shuffled), counts(&plain), "{}", case["name"]);
        }
    }
}

#[test]
fn calibration_matches_sklearn() {
    let fx = fixture();
    let c = &fx["calibration"];
    let y = bools(&c["labels"]);
    let p = f64s(&c["probs"]);
    let cal = calibration(&y, &p, c["n_bins"].as_u64().unwrap() as usize).unwrap();
    let nonempty: Vec<_> = cal.bins.iter().filter(|b| b.count > 0).collect();
    let (pt, pp) = (f64s(&c["prob_true"]), f64s(&c["prob_pred"]));
    assert_eq!(nonempty.len(), pt.len());
    for (b, (t, q)) in nonempty.iter().zip(pt.iter().zip(&pp)) {
        close(b.fraction_positive, *t, 1e-12, "prob_true");
        close(b.mean_predicted, *q, 1e-12, "prob_pred");
    }
    close(
        brier_score(&y, &p).unwrap(),
        c["brier"].as_f64().unwrap(),
        1e-12,
        "brier",
    );
}

#[test]
fn trustworthiness_matches_sklearn() {
    let fx = fixture();
    let t = &fx["trustworthiness"];
    let data: Vec<f32> = f64s(&t["data"]).iter().map(|&v| v as f32).collect();
    let emb: Vec<[f64; 2]> = t["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = f64s(r);
            [r[0], r[1]]
        })
        .collect();
    let got = trustworthiness(
        &data,
        t["dim"].as_u64().unwrap() as usize,
        &emb,
        t["k"].as_u64().unwrap() as usize,
    )
    .unwrap();
    close(
        got,
        t["trustworthiness"].as_f64().unwrap(),
        1e-12,
        "trustworthiness",
    );
}

#[test]
fn stratified_bootstrap_agrees_with_numpy_bootstrap() {
    // Same resampling scheme, different RNG streams: the CIs agree only up to Monte-Carlo error
    // (2000 replicates each), so compare within 0.03 as the reference notes advise.
    use med_eval::bootstrap::{bootstrap_auc_ci, BootstrapConfig};
    let fx = fixture();
    for case in fx["roc_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y = bools(&case["labels"]);
        let a = f64s(&case["scores_a"]);
        let b = bootstrap_auc_ci(
            &y,
            &a,
            &BootstrapConfig {
                replicates: 2000,
                seed: 11,
                level: 0.95,
            },
        )
        .unwrap();
        let want = f64s(&case["a"]["bootstrap_ci"]);
        assert!(
            (b.ci.low - want[0]).abs() < 0.03,
            "{name}: {:?} vs {want:?}",
            b.ci
        );
        assert!(
            (b.ci.high - want[1]).abs() < 0.03,
            "{name}: {:?} vs {want:?}",
            b.ci
        );
        let se = case["a"]["bootstrap_se"].as_f64().unwrap();
        assert!(
            (b.se - se).abs() <= 0.1 * se + 1e-12,
            "{name}: se {} vs {se}",
            b.se
        );
    }
}
