//! The named random streams of a run: every random draw of the pipeline (an initialisation, a
//! shuffle, the prior's sampling) starts from one of these seeds, derived from the master seed.
//!
//! Each stream is its parent's seed XOR a fixed tag. The tags are frozen: they are the numbers the
//! earlier, unnamed derivations used, so that a master seed keeps giving the very numbers (and
//! reports) it gave before the streams had names. A stream added later may use
//! [`cmkd_train::rng::stream`] with a name instead; these may not change without changing every
//! result.

/// One named random stream. [`Stream::of`] gives its seed from the parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    // Phase A (parent: the master seed).
    /// Initialisation of the CTPA classifier pretrained on the CT-only set.
    PretrainCtpaInit,
    /// Initialisation of the X-ray classifier pretrained with the CT-only set's PE labels.
    PretrainCxrInit,
    /// Its training (shuffling).
    PretrainCxrFit,
    /// Initialisation of the findings backbone.
    FindingsBackboneInit,
    /// Initialisation of the findings head.
    FindingsHeadInit,
    /// Training of the findings classifier.
    FindingsFit,
    // One fold (parent: [`fold_seed`]).
    /// The fold's CTPA-only head: initialisation.
    CtpaHeadInit,
    /// The fold's CTPA-only head: training.
    CtpaHeadFit,
    /// The fold's CXR-only head: initialisation.
    CxrHeadInit,
    /// The fold's CXR-only head: training.
    CxrHeadFit,
    /// The knowledge-distillation students (initialisation and training).
    Students,
    /// The diffusion prior of every variant (initialisation and training; the parent of the
    /// prior's own streams below).
    Prior,
    /// Analytic-DPM statistics of the t-SNE snapshots.
    TsneGamma,
    /// Sampling of the t-SNE snapshots.
    TsneSample,
    // A student (parent: [`Stream::Students`]).
    /// The objective's own parameters (DisCoM-KD's and AFT-KD's).
    StudentObjective,
    // The prior (parent: [`Stream::Prior`]).
    /// The ablation objective's own parameters.
    PriorObjective,
    /// Pretraining on the CT-only set's pairs.
    PriorPretrain,
    /// Analytic-DPM statistics.
    PriorGamma,
    /// Sampling of the draws that are classified.
    PriorSample,
}

impl Stream {
    /// The frozen tag of the stream (see the module docs).
    const fn tag(self) -> u64 {
        match self {
            Stream::PretrainCtpaInit => 0xC7,
            Stream::PretrainCxrInit => 0xC8,
            Stream::PretrainCxrFit => 0x01,
            Stream::FindingsBackboneInit => 0xC9,
            Stream::FindingsHeadInit => 0xCA,
            Stream::FindingsFit => 0x02,
            Stream::CtpaHeadInit => 0x11,
            Stream::CtpaHeadFit => 0x12,
            Stream::CxrHeadInit => 0x13,
            Stream::CxrHeadFit => 0x14,
            Stream::Students => 0x77,
            Stream::Prior => 0x99,
            Stream::TsneGamma => 0x61,
            Stream::TsneSample => 0x62,
            Stream::StudentObjective => 0x0B,
            Stream::PriorObjective => 0xA7,
            Stream::PriorPretrain => 0x5E,
            Stream::PriorGamma => 0x6A,
            Stream::PriorSample => 0x5A,
        }
    }

    /// The stream's seed under the parent stream's seed `parent`.
    pub(crate) const fn of(self, parent: u64) -> u64 {
        parent ^ self.tag()
    }
}

/// The seed of fold `k` (parent of the fold's streams).
pub(crate) const fn fold_seed(master: u64, k: usize) -> u64 {
    master.wrapping_mul(1000).wrapping_add(k as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Stream; 19] = [
        Stream::PretrainCtpaInit,
        Stream::PretrainCxrInit,
        Stream::PretrainCxrFit,
        Stream::FindingsBackboneInit,
        Stream::FindingsHeadInit,
        Stream::FindingsFit,
        Stream::CtpaHeadInit,
        Stream::CtpaHeadFit,
        Stream::CxrHeadInit,
        Stream::CxrHeadFit,
        Stream::Students,
        Stream::Prior,
        Stream::TsneGamma,
        Stream::TsneSample,
        Stream::StudentObjective,
        Stream::PriorObjective,
        Stream::PriorPretrain,
        Stream::PriorGamma,
        Stream::PriorSample,
    ];

    /// Streams that share a parent must differ, or two models would draw the same numbers.
    #[test]
    fn streams_under_one_parent_are_distinct() {
        let groups: [&[Stream]; 4] = [&ALL[0..6], &ALL[6..14], &ALL[14..15], &ALL[15..19]];
        for g in groups {
            for (i, a) in g.iter().enumerate() {
                for b in &g[i + 1..] {
                    assert_ne!(a.of(7), b.of(7), "{a:?} and {b:?}");
                }
            }
        }
        // The fold seeds of one master seed are distinct, and the master seed keeps its numbers.
        assert_ne!(fold_seed(3, 0), fold_seed(3, 1));
        assert_eq!(fold_seed(3, 2), 3002);
        assert_eq!(Stream::Prior.of(3002), 3002 ^ 0x99);
    }
}
