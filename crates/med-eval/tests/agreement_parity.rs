//! Parity of `med_eval::agreement` with scipy (`pearsonr`, `spearmanr`) and scikit-learn
//! (`r2_score`, variance-weighted); fixtures made by tools/eval/make_agreement_fixtures.py.

use med_eval::agreement::{pearson, r2_score, spearman};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/agreement_parity.json")).expect("fixture parses")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("array").iter().map(f64s).collect()
}

#[test]
fn correlations_match_scipy() {
    let fx = fixture();
    for case in fx["correlation"].as_array().unwrap() {
        let (a, b) = (f64s(&case["a"]), f64s(&case["b"]));
        let name = case["name"].as_str().unwrap();
        let p = pearson(&a, &b).unwrap();
        let s = spearman(&a, &b).unwrap();
        let (ep, es) = (
            case["pearson"].as_f64().unwrap(),
            case["spearman"].as_f64().unwrap(),
        );
        assert!((p - ep).abs() < 1e-12, "{name}: pearson {p} vs scipy {ep}");
        assert!((s - es).abs() < 1e-12, "{name}: spearman {s} vs scipy {es}");
    }
}

#[test]
fn r2_matches_sklearn_variance_weighted() {
    let fx = fixture();
    for case in fx["r2"].as_array().unwrap() {
        let r = r2_score(&matrix(&case["truth"]), &matrix(&case["pred"])).unwrap();
        let e = case["r2"].as_f64().unwrap();
        assert!(
            (r - e).abs() < 1e-12,
            "{}: {r} vs sklearn {e}",
            case["name"]
        );
    }
}
