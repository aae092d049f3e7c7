//! The paired cohort (CTPA + CXR + label per patient) and the CT-only pretraining set, with the
//! paper's preprocessing: CT in HU windowed to [-100, 900] and scaled to [0, 1]; X-rays scaled to
//! [0, 1] per image.

use med_io::{Image2d, Volume};
use rand::rngs::StdRng;

use super::error::{PipelineError, Result};
use super::phantom::{draw_labels, phantom_case, PhantomConfig};

/// The paper's CT window in HU.
pub const CT_WINDOW: (f32, f32) = (-100.0, 900.0);

/// One patient, preprocessed.
#[derive(Debug, Clone)]
pub struct Patient {
    /// Patient id (unique in a cohort).
    pub id: String,
    /// CTPA volume, windowed and scaled to [0, 1].
    pub ctpa: Volume,
    /// Chest X-ray (or, in the pretraining set, a radiograph rendered from the CT), scaled to [0, 1].
    pub cxr: Image2d,
    /// Pulmonary embolism present.
    pub label: bool,
}

/// Patients with both modalities and a label.
#[derive(Debug, Clone, Default)]
pub struct PairedCohort {
    /// The patients, in a fixed order (fold assignment refers to it).
    pub patients: Vec<Patient>,
}

/// Windows HU to `[lo, hi]` and scales to [0, 1].
pub fn window_hu(volume: &Volume, (lo, hi): (f32, f32)) -> Result<Volume> {
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return Err(PipelineError::config(
            "window",
            format!("empty window [{lo}, {hi}]"),
        ));
    }
    let data = volume
        .data()
        .iter()
        .map(|v| (v.clamp(lo, hi) - lo) / (hi - lo))
        .collect();
    Ok(volume.with_data(data)?)
}

/// Scales an X-ray to [0, 1] by its own minimum and maximum (a flat image becomes zeros).
pub fn scale_unit(image: &Image2d) -> Result<Image2d> {
    let (lo, hi, _) = image
        .stats()
        .ok_or_else(|| PipelineError::Data("empty X-ray".into()))?;
    let range = hi - lo;
    let data = image
        .data()
        .iter()
        .map(|v| if range > 0.0 { (v - lo) / range } else { 0.0 })
        .collect();
    let mut out = Image2d::new(data, image.width(), image.height())?;
    out.spacing = image.spacing;
    Ok(out)
}

impl PairedCohort {
    /// `n` synthetic patients ([`super::phantom`]) with ids `{prefix}{index:04}`, preprocessed.
    pub fn synthetic(
        n: usize,
        config: &PhantomConfig,
        prefix: &str,
        rng: &mut StdRng,
    ) -> Result<Self> {
        config.validate()?;
        let labels = draw_labels(n, config.prevalence, rng)?;
        let bar = cmkd_train::progress::bar(n as u64, &format!("{prefix} cohort"));
        let mut patients = Vec::with_capacity(n);
        for (i, label) in labels.into_iter().enumerate() {
            let case = phantom_case(config, label, rng)?;
            patients.push(Patient {
                id: format!("{prefix}{i:04}"),
                ctpa: window_hu(&case.ctpa, CT_WINDOW)?,
                cxr: scale_unit(&case.cxr)?,
                label,
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        let cohort = Self { patients };
        cohort.validate()?;
        Ok(cohort)
    }

    /// Number of patients.
    pub fn len(&self) -> usize {
        self.patients.len()
    }

    /// Whether there are no patients.
    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
    }

    /// The labels in patient order.
    pub fn labels(&self) -> Vec<bool> {
        self.patients.iter().map(|p| p.label).collect()
    }

    /// Checks unique ids, both classes present, one in-plane CT size and one X-ray size, and
    /// finite values.
    pub fn validate(&self) -> Result<()> {
        let first = self
            .patients
            .first()
            .ok_or_else(|| PipelineError::Data("the cohort has no patients".into()))?;
        let pos = self.patients.iter().filter(|p| p.label).count();
        if pos == 0 || pos == self.len() {
            return Err(PipelineError::Data(format!(
                "the cohort needs both classes; it has {pos} positives among {} patients",
                self.len()
            )));
        }
        let mut ids = std::collections::HashSet::new();
        let [nx, ny, _] = first.ctpa.dims();
        let (w, h) = (first.cxr.width(), first.cxr.height());
        for p in &self.patients {
            if !ids.insert(p.id.as_str()) {
                return Err(PipelineError::Data(format!(
                    "patient id `{}` appears twice",
                    p.id
                )));
            }
            let [px, py, pz] = p.ctpa.dims();
            if (px, py) != (nx, ny) {
                return Err(PipelineError::Data(format!(
                    "patient `{}`: CT slices are {px}x{py}, the first patient's are {nx}x{ny}; resample to one size",
                    p.id
                )));
            }
            if pz < 2 {
                return Err(PipelineError::Data(format!(
                    "patient `{}`: CT has {pz} slice(s); at least 2 are needed",
                    p.id
                )));
            }
            if (p.cxr.width(), p.cxr.height()) != (w, h) {
                return Err(PipelineError::Data(format!(
                    "patient `{}`: X-ray is {}x{}, the first patient's is {w}x{h}",
                    p.id,
                    p.cxr.width(),
                    p.cxr.height()
                )));
            }
            if p.ctpa.data().iter().any(|v| !v.is_finite())
                || p.cxr.data().iter().any(|v| !v.is_finite())
            {
                return Err(PipelineError::Data(format!(
                    "patient `{}` has non-finite voxels or pixels",
                    p.id
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use med_io::Geometry;
    use rand::SeedableRng;

    #[test]
    fn window_clamps_and_scales() {
        let v = Volume::new(
            vec![-1000.0, -100.0, 400.0, 2000.0],
            [2, 2, 1],
            Geometry::default(),
        )
        .unwrap();
        let w = window_hu(&v, CT_WINDOW).unwrap();
        assert_eq!(w.data(), &[0.0, 0.0, 0.5, 1.0]);
    }

    #[test]
    fn synthetic_cohort_is_valid_and_one_class_is_rejected() {
        let cfg = PhantomConfig {
            size: 16,
            slices: 4,
            cxr_size: 16,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(0);
        let c = PairedCohort::synthetic(6, &cfg, "p", &mut rng).unwrap();
        assert_eq!(c.len(), 6);
        assert!(c
            .patients
            .iter()
            .all(|p| p.ctpa.data().iter().all(|v| (0.0..=1.0).contains(v))));
        let mut one = c.clone();
        for p in &mut one.patients {
            p.label = false;
        }
        assert!(matches!(one.validate(), Err(PipelineError::Data(_))));
    }
}
