//! Table 2 on one fold: the prior's loss, its pretraining and the embedding size, each changed
//! alone from the run's settings, and the structural rows (CXR-only and the prior with the X-ray
//! backbone pretrained with the CT-only set's PE labels).

use super::distill::{PriorLoss, TrainedPrior};
use super::error::Result;
use super::experiment::{Experiment, FoldOutput, Frozen};
use super::fold::{FoldHeads, FoldRow, PriorVariant};
use super::run::PRIOR;

/// The loss ablations, in table order.
const LOSSES: [PriorLoss; 5] = [
    PriorLoss::L2,
    PriorLoss::L2Bce,
    PriorLoss::L2Aft,
    PriorLoss::L2Proto,
    PriorLoss::L2Contrastive,
];

/// Section of the structural rows.
pub(crate) const STRUCTURAL: &str = "X-ray backbone pretrained with the CT-only set's PE labels";

/// The prior `variant` trained on `heads` and sampled: its row.
fn prior_row(
    exp: &Experiment,
    heads: &FoldHeads,
    k: usize,
    variant: PriorVariant,
    model: String,
    section: &str,
) -> Result<FoldRow> {
    let prior: TrainedPrior = exp.train_variant(heads, k, variant, None)?;
    let draws = exp.sample(heads, k, &prior)?;
    let params = prior.prior.num_params() as u64;
    Ok(FoldRow::new(
        model,
        section,
        params,
        &draws.mean,
        &exp.folds[k],
    ))
}

/// Every Table 2 row of fold `k` but the default one (see [`super::report`]).
pub(crate) fn fold_rows(
    exp: &Experiment,
    frozen: &Frozen,
    k: usize,
    main: &FoldOutput,
    heads: &FoldHeads,
) -> Result<Vec<FoldRow>> {
    let config = exp.config;
    let pretrain_on = config.prior_pretrain_epochs > 0;
    let mut rows = Vec::new();
    for loss in LOSSES {
        let model = format!("loss: {}", loss.label());
        // L2 + BCE with pretraining as configured is the main run's prior (same seed, same data):
        // reuse its scores instead of training it again.
        let main_prior = main.models.iter().find(|m| m.model == PRIOR);
        if let (PriorLoss::L2Bce, Some(m)) = (loss, main_prior) {
            rows.push(FoldRow {
                model,
                section: "Loss".to_string(),
                ..m.clone()
            });
            continue;
        }
        let variant = PriorVariant {
            loss,
            pretrain: pretrain_on,
        };
        rows.push(prior_row(exp, heads, k, variant, model, "Loss")?);
    }
    let label = if pretrain_on {
        "pretraining: off"
    } else {
        "pretraining: on"
    };
    let variant = PriorVariant {
        loss: PriorLoss::L2Bce,
        pretrain: !pretrain_on,
    };
    rows.push(prior_row(
        exp,
        heads,
        k,
        variant,
        label.into(),
        "Pretraining",
    )?);
    let big = config.embed_dim * 2;
    let wide = exp.heads_with(config, big, &frozen.main, k)?;
    let model = format!("embedding size {big}");
    rows.push(prior_row(
        exp,
        &wide,
        k,
        exp.main_prior(),
        model,
        "Embedding size",
    )?);
    if let Some((other, a)) = &frozen.ct_only_pe {
        let h = exp.heads_with(other, config.embed_dim, a, k)?;
        rows.push(h.cxr_row(STRUCTURAL, &exp.folds[k]));
        rows.push(prior_row(
            exp,
            &h,
            k,
            exp.main_prior(),
            PRIOR.into(),
            STRUCTURAL,
        )?);
    }
    Ok(rows)
}
