//! The synthetic paired CXR/CTPA cohort and the CT-only RSPECT-like set.

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::phantom::{
    render_phantom, Anatomy, EmbolusDistribution, IndirectSigns, Phantom, PhantomConfig,
};
use super::xray::{clinical_xray, XrayConfig};
use crate::drr::{render_hu, DrrGeometry, Renderer};
use crate::error::{Error, Result};
use crate::image2d::Image2d;
use crate::volume::Volume;

/// What the X-ray of each patient is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum XrayStyle {
    /// A clinical-looking radiograph (exposure, contrast curve, blur, noise): the paired cohort.
    Clinical(XrayConfig),
    /// The plain DiffDRR image (line integral of density): the RSPECT-like pretraining set.
    PlainDrr(DrrGeometry),
}

/// Parameters of a synthetic cohort.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CohortConfig {
    /// Number of patients.
    pub n: usize,
    /// Fraction of PE-positive patients (the paper's cohort: 0.34).
    pub prevalence: f64,
    /// Seed: the same seed gives the same cohort, byte for byte.
    pub seed: u64,
    /// CT grid.
    pub phantom: PhantomConfig,
    /// X-ray model.
    pub xray: XrayStyle,
    /// Strength in `[0, 1]` of the indirect PE signs visible on the X-ray.
    pub sign_strength: f64,
    /// Probability of each indirect sign in a PE-positive patient.
    pub sign_prob_positive: f64,
    /// Probability of each sign as a confounder in a PE-negative patient.
    pub sign_prob_negative: f64,
    /// Probability of a contrast-mixing artefact (a faint non-PE filling defect) in a negative patient.
    pub artefact_prob_negative: f64,
    /// Number, site and size of the emboli of a positive patient.
    pub emboli: EmbolusDistribution,
}

impl Default for CohortConfig {
    /// The paired cohort: 300 patients, prevalence 0.34, clinical X-rays.
    fn default() -> Self {
        Self {
            n: 300,
            prevalence: 0.34,
            seed: 0,
            phantom: PhantomConfig::default(),
            xray: XrayStyle::Clinical(XrayConfig::default()),
            sign_strength: 1.0,
            sign_prob_positive: 0.6,
            sign_prob_negative: 0.12,
            artefact_prob_negative: 0.25,
            emboli: EmbolusDistribution::default(),
        }
    }
}

impl CohortConfig {
    /// The CT-only RSPECT-like set: `n` studies, prevalence 0.32 (RSPECT's positive-exam rate is about a
    /// third), plain DRRs with a 128-pixel README camera, and a seed stream distinct from the paired cohort's.
    pub fn rspect_like(n: usize, seed: u64) -> Self {
        Self {
            n,
            prevalence: 0.32,
            seed: seed ^ 0x5253_5045_4354_0000,
            xray: XrayStyle::PlainDrr(DrrGeometry::diffdrr_readme().with_detector_pixels(128, 128)),
            ..Self::default()
        }
    }

    /// A chest-X-ray findings population (CheXpert-like) for pretraining an X-ray backbone that
    /// never sees a PE label: `n` patients without PE whose findings (the four signs the generator
    /// paints as indirect PE signs: enlarged pulmonary artery, peripheral opacity, pleural effusion,
    /// hyperlucent region) arise for other causes, each independently in a fraction `finding_prob`
    /// of them ([`Patient::signs`] holds the labels, [`IndirectSigns::present`]); clinical-looking
    /// X-rays, no contrast-mixing artefacts, and a seed stream distinct from the paired cohort's and
    /// the RSPECT-like set's.
    pub fn findings_like(n: usize, finding_prob: f64, seed: u64) -> Self {
        Self {
            n,
            prevalence: 0.0,
            seed: seed ^ 0x4649_4e44_494e_4700,
            sign_prob_negative: finding_prob,
            artefact_prob_negative: 0.0,
            ..Self::default()
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(Error::Param {
                name: "n",
                reason: "a cohort needs at least one patient".into(),
            });
        }
        for (name, v) in [
            ("prevalence", self.prevalence),
            ("sign_strength", self.sign_strength),
            ("sign_prob_positive", self.sign_prob_positive),
            ("sign_prob_negative", self.sign_prob_negative),
            ("artefact_prob_negative", self.artefact_prob_negative),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Param {
                    name,
                    reason: format!("must lie in [0, 1], got {v}"),
                });
            }
        }
        self.phantom.validate()?;
        self.emboli.validate()?;
        match self.xray {
            XrayStyle::Clinical(x) => x.validate(),
            XrayStyle::PlainDrr(g) => g.validate(),
        }
    }
}

/// One generated patient.
#[derive(Debug, Clone)]
pub struct Patient {
    /// Position in the cohort.
    pub index: usize,
    /// Identifier (`SYN<seed>-<index>`), used as both accession numbers in the manifest.
    pub id: String,
    /// 1 if PE-positive.
    pub label: u8,
    /// The CTPA in HU.
    pub ct: Volume,
    /// The chest X-ray (clinical style in `[0, 1]`, or a plain DRR).
    pub cxr: Image2d,
    /// Indirect signs painted into this patient.
    pub signs: IndirectSigns,
    /// Number of emboli.
    pub emboli: usize,
    /// [`Phantom::filling_defect_fraction`] of the CT.
    pub filling_defect_fraction: f64,
}

/// A lazily generated cohort: labels are fixed up front, images are made on request.
#[derive(Debug, Clone)]
pub struct Cohort {
    config: CohortConfig,
    labels: Vec<u8>,
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser: decorrelates per-patient seeds.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Cohort {
    /// Fixes the labels: exactly `round(n * prevalence)` positives at seeded positions.
    pub fn new(config: CohortConfig) -> Result<Self> {
        config.validate()?;
        let positives = (config.n as f64 * config.prevalence).round() as usize;
        let mut labels: Vec<u8> = (0..config.n).map(|i| u8::from(i < positives)).collect();
        let mut rng = StdRng::seed_from_u64(mix(config.seed));
        for i in (1..labels.len()).rev() {
            let j = rng.random_range(0..=i);
            labels.swap(i, j);
        }
        Ok(Self { config, labels })
    }

    /// The configuration.
    pub fn config(&self) -> &CohortConfig {
        &self.config
    }

    /// Number of patients.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false: a cohort has at least one patient.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All labels (1 = PE), without generating any image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Identifier of patient `index`.
    pub fn id(&self, index: usize) -> String {
        format!("SYN{:04}-{index:05}", self.config.seed % 10_000)
    }

    fn rng(&self, index: usize, stream: u64) -> StdRng {
        StdRng::seed_from_u64(mix(
            mix(self.config.seed) ^ mix(index as u64 ^ (stream << 48))
        ))
    }

    fn check(&self, index: usize) -> Result<u8> {
        self.labels.get(index).copied().ok_or_else(|| Error::Param {
            name: "index",
            reason: format!(
                "patient {index} is outside a cohort of {}",
                self.labels.len()
            ),
        })
    }

    /// The anatomy of patient `index` (cheap: no voxels).
    pub fn anatomy(&self, index: usize) -> Result<Anatomy> {
        let label = self.check(index)?;
        let c = &self.config;
        let mut rng = self.rng(index, 1);
        let p = if label == 1 {
            c.sign_prob_positive
        } else {
            c.sign_prob_negative
        };
        let strength = |rng: &mut StdRng| {
            if rng.random_bool(p) {
                c.sign_strength * rng.random_range(0.5..1.0)
            } else {
                0.0
            }
        };
        let signs = IndirectSigns {
            enlarged_trunk: strength(&mut rng),
            wedge_opacity: strength(&mut rng),
            effusion: strength(&mut rng),
            oligemia: strength(&mut rng),
            left: rng.random_bool(0.5),
        };
        let artefact = label == 0 && rng.random_bool(c.artefact_prob_negative);
        let mut anatomy = Anatomy::sample(&mut rng, label == 1, signs, &c.emboli);
        if artefact {
            anatomy.add_mixing_artefact(&mut rng);
        }
        Ok(anatomy)
    }

    /// The CT phantom of patient `index`, with its label map.
    pub fn phantom(&self, index: usize) -> Result<Phantom> {
        let anatomy = self.anatomy(index)?;
        render_phantom(&anatomy, &self.config.phantom, &mut self.rng(index, 2))
    }

    /// Generates patient `index` (CT and X-ray).
    pub fn patient(&self, index: usize) -> Result<Patient> {
        let label = self.check(index)?;
        let phantom = self.phantom(index)?;
        let cxr = match self.config.xray {
            XrayStyle::Clinical(x) => clinical_xray(&phantom.ct, &x, &mut self.rng(index, 3))?,
            XrayStyle::PlainDrr(g) => render_hu(&phantom.ct, &g, Renderer::Siddon, 1.0)?,
        };
        Ok(Patient {
            index,
            id: self.id(index),
            label,
            signs: phantom.anatomy.signs,
            emboli: phantom.anatomy.emboli.len(),
            filling_defect_fraction: phantom.filling_defect_fraction(),
            ct: phantom.ct,
            cxr,
        })
    }

    /// Generates every patient in parallel, in order, with a progress bar if `progress`.
    pub fn generate(&self, progress: bool) -> Result<Vec<Patient>> {
        let bar = if progress {
            ProgressBar::new(self.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})") {
            bar.set_style(style);
        }
        bar.set_message("synthetic patients");
        let out = (0..self.len())
            .into_par_iter()
            .map(|i| {
                let p = self.patient(i);
                bar.inc(1);
                p
            })
            .collect();
        bar.finish_and_clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image2d::Image2d;

    fn tiny(n: usize, seed: u64) -> CohortConfig {
        let x = XrayConfig {
            geometry: DrrGeometry::diffdrr_readme().with_detector_pixels(32, 32),
            ..Default::default()
        };
        CohortConfig {
            n,
            seed,
            phantom: PhantomConfig {
                dims: [24, 20, 24],
                spacing: [14.0, 14.0, 13.0],
            },
            xray: XrayStyle::Clinical(x),
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_and_exact_prevalence() {
        let a = Cohort::new(tiny(12, 5)).unwrap();
        let b = Cohort::new(tiny(12, 5)).unwrap();
        assert_eq!(a.labels(), b.labels());
        assert_eq!(a.labels().iter().filter(|&&l| l == 1).count(), 4);
        let pa = a.patient(3).unwrap();
        let pb = b.patient(3).unwrap();
        assert_eq!(pa.ct.data(), pb.ct.data());
        assert_eq!(pa.cxr.data(), pb.cxr.data());
        let c = Cohort::new(tiny(12, 6)).unwrap();
        assert_ne!(c.patient(3).unwrap().ct.data(), pa.ct.data());
        assert!(a.patient(12).is_err());
        let all = a.generate(false).unwrap();
        assert_eq!(all[3].ct.data(), pa.ct.data());
        assert!(all
            .iter()
            .all(|p| p.cxr.data().iter().all(|v| (0.0..=1.0).contains(v))));
        assert!(all.iter().all(|p| (p.label == 1) == (p.emboli > 0)));
    }

    /// Rank AUC (Mann-Whitney), ties counted half.
    fn auc(score: &[f64], label: &[u8]) -> f64 {
        let (mut num, mut pairs) = (0.0, 0.0);
        for (s1, _) in score.iter().zip(label).filter(|(_, &l)| l == 1) {
            for (s0, _) in score.iter().zip(label).filter(|(_, &l)| l == 0) {
                num += if s1 > s0 {
                    1.0
                } else if s1 == s0 {
                    0.5
                } else {
                    0.0
                };
                pairs += 1.0;
            }
        }
        num / pairs
    }

    #[test]
    fn ct_statistic_separates_pe_much_better_than_xray_statistics() {
        let x = XrayConfig {
            geometry: DrrGeometry::diffdrr_readme().with_detector_pixels(32, 32),
            ..Default::default()
        };
        let cfg = CohortConfig {
            n: 96,
            seed: 11,
            xray: XrayStyle::Clinical(x),
            ..Default::default()
        };
        let patients = Cohort::new(cfg).unwrap().generate(false).unwrap();
        let labels: Vec<u8> = patients.iter().map(|p| p.label).collect();
        let ct: Vec<f64> = patients.iter().map(|p| p.filling_defect_fraction).collect();
        let ct_auc = auc(&ct, &labels);
        // Simple X-ray statistics: mean brightness, centre (mediastinum) brightness, lower-lung brightness.
        let stat = |f: &dyn Fn(&Image2d) -> f64| -> f64 {
            let s: Vec<f64> = patients.iter().map(|p| f(&p.cxr)).collect();
            let a = auc(&s, &labels);
            a.max(1.0 - a)
        };
        let mean = stat(&|i| i.stats().unwrap().2);
        let centre = stat(&|i| {
            (8..20)
                .flat_map(|r| (12..20).map(move |c| (r, c)))
                .map(|(r, c)| i.get(r, c).unwrap() as f64)
                .sum()
        });
        let bases = stat(&|i| {
            (18..26)
                .flat_map(|r| (4..28).map(move |c| (r, c)))
                .map(|(r, c)| i.get(r, c).unwrap() as f64)
                .sum()
        });
        let best_xray = mean.max(centre).max(bases);
        assert!(
            ct_auc > 0.75,
            "CT statistic AUC {ct_auc} (best X-ray statistic {best_xray})"
        );
        assert!(
            ct_auc > best_xray + 0.1,
            "CT {ct_auc} vs best X-ray statistic {best_xray}"
        );
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(Cohort::new(CohortConfig { n: 0, ..tiny(1, 0) }).is_err());
        assert!(Cohort::new(CohortConfig {
            prevalence: 1.5,
            ..tiny(4, 0)
        })
        .is_err());
        let mut bad = tiny(4, 0);
        bad.phantom.dims = [4, 40, 40];
        assert!(Cohort::new(bad).is_err());
    }

    #[test]
    fn findings_population_has_no_pe_and_independent_findings() {
        let mut cfg = CohortConfig::findings_like(400, 0.3, 2);
        cfg.phantom = tiny(1, 0).phantom;
        cfg.xray = tiny(1, 0).xray;
        let cohort = Cohort::new(cfg).unwrap();
        assert!(cohort.labels().iter().all(|&l| l == 0));
        let findings: Vec<[bool; 4]> = (0..cohort.len())
            .map(|i| cohort.anatomy(i).unwrap().signs.present())
            .collect();
        for j in 0..4 {
            let rate = findings.iter().filter(|f| f[j]).count() as f64 / 400.0;
            assert!((rate - 0.3).abs() < 0.07, "finding {j}: rate {rate}");
        }
        // Independent: the rate of two findings together is near the product of the rates.
        let both = findings.iter().filter(|f| f[0] && f[2]).count() as f64 / 400.0;
        assert!((both - 0.09).abs() < 0.05, "{both}");
        let p = cohort.patient(0).unwrap();
        assert_eq!(p.emboli, 0);
    }

    #[test]
    fn rspect_like_uses_plain_drrs() {
        let mut cfg = CohortConfig::rspect_like(3, 1);
        cfg.phantom = tiny(1, 0).phantom;
        cfg.xray = XrayStyle::PlainDrr(DrrGeometry::diffdrr_readme().with_detector_pixels(24, 24));
        let p = Cohort::new(cfg).unwrap().patient(0).unwrap();
        assert_eq!(p.cxr.width(), 24);
        assert!(
            p.cxr.stats().unwrap().1 > 1.0,
            "a plain DRR is an unnormalised line integral"
        );
    }
}
