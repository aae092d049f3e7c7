//! The synthetic contrast-enhanced chest CT (CTPA) phantom.
//!
//! Anatomy in LPS millimetres around the volume centre (+x patient left, +y posterior, +z head):
//! body wall with subcutaneous fat, two lungs with parenchymal texture, trachea, mediastinum, heart with
//! opacified right and left chambers, the pulmonary trunk with left and right pulmonary arteries and
//! lobar and segmental branches into each lung, aorta, spine, sternum and ribs. Every size, position,
//! contrast level and noise level varies per patient. Emboli are soft-tissue filling defects painted
//! only inside the lumen of a chosen artery.

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::shapes::{coverage, lerp3, Shape, P3};
use crate::error::{Error, Result};
use crate::volume::{Geometry, Intensity, Volume};

/// Grid of the generated CT.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhantomConfig {
    /// `[nx, ny, nz]`.
    pub dims: [usize; 3],
    /// Voxel size in mm.
    pub spacing: [f64; 3],
}

impl Default for PhantomConfig {
    /// 64 x 56 x 64 voxels of 5.5 x 5.5 x 5 mm: a 352 x 308 x 320 mm field of view, cheap on a CPU.
    fn default() -> Self {
        Self {
            dims: [64, 56, 64],
            spacing: [5.5, 5.5, 5.0],
        }
    }
}

impl PhantomConfig {
    /// Checks the grid is usable for a chest (at least 8 voxels a side, finite positive spacing).
    pub fn validate(&self) -> Result<()> {
        if self.dims.iter().any(|&d| d < 8) {
            return Err(Error::Param {
                name: "dims",
                reason: format!("need at least 8 voxels a side, got {:?}", self.dims),
            });
        }
        Geometry::with_spacing(self.spacing).validate()
    }
}

/// Labels of [`Phantom::labels`].
pub mod label {
    /// Anything else.
    pub const BACKGROUND: u8 = 0;
    /// Lumen of a pulmonary artery (voxels at least 95% inside it).
    pub const ARTERY: u8 = 1;
    /// Embolus (filling defect inside an artery).
    pub const EMBOLUS: u8 = 2;
    /// Lung parenchyma.
    pub const LUNG: u8 = 3;
}

/// Where an embolus sits in the pulmonary arterial tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmbolusSite {
    /// Pulmonary trunk or a main pulmonary artery.
    Central,
    /// A lobar artery.
    Lobar,
    /// A segmental artery.
    Segmental,
}

/// One embolus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Embolus {
    /// Where it is.
    pub site: EmbolusSite,
    /// Index of the artery segment in the tree.
    pub vessel: usize,
    /// Start and end along the vessel's axis (fractions of its length).
    pub span: [f64; 2],
    /// Radius relative to the vessel lumen (>= 1 occludes it).
    pub relative_radius: f64,
    /// HU of the clot.
    pub hu: f64,
}

/// How a PE-positive patient's emboli are drawn: how many, where in the tree, how long and how wide.
///
/// Real cohorts are dominated by central and lobar clots (segmental-only PE is roughly a quarter of
/// positive CTPAs); the default follows that, which also keeps most emboli resolvable by a classifier
/// working on a coarse CPU-sized grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmbolusDistribution {
    /// Relative weights of the sites `[central, lobar, segmental]` of each embolus.
    pub site_weights: [f64; 3],
    /// Mean number of emboli per positive patient (at least one; extra ones are Poisson-like).
    pub mean_count: f64,
    /// Range of the clot's half-length, as a fraction of its vessel's length.
    pub half_span: [f64; 2],
    /// Range of the clot radius relative to the lumen (>= 1 occludes it).
    pub relative_radius: [f64; 2],
}

impl Default for EmbolusDistribution {
    fn default() -> Self {
        Self {
            site_weights: [0.6, 0.3, 0.1],
            mean_count: 2.0,
            half_span: [0.2, 0.4],
            relative_radius: [0.85, 1.3],
        }
    }
}

impl EmbolusDistribution {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, reason: String| Err(Error::Param { name, reason });
        let w = self.site_weights;
        if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
            return bad(
                "site_weights",
                format!("need finite non-negative weights with a positive sum, got {w:?}"),
            );
        }
        if !(self.mean_count.is_finite() && self.mean_count >= 1.0 && self.mean_count <= 8.0) {
            return bad(
                "mean_count",
                format!("must lie in [1, 8], got {}", self.mean_count),
            );
        }
        for (name, [lo, hi], max) in [
            ("half_span", self.half_span, 0.5),
            ("relative_radius", self.relative_radius, 2.0),
        ] {
            if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi && hi <= max) {
                return bad(
                    name,
                    format!("need 0 < low <= high <= {max}, got [{lo}, {hi}]"),
                );
            }
        }
        Ok(())
    }

    fn draw(&self, rng: &mut StdRng, arteries: &[Vessel]) -> Vec<Embolus> {
        // One clot, plus Bernoulli extras whose expected total is `mean_count`.
        let extra = self.mean_count - 1.0;
        let mut n = 1;
        for _ in 0..7 {
            if rng.random_bool((extra / 7.0).clamp(0.0, 1.0)) {
                n += 1;
            }
        }
        let total: f64 = self.site_weights.iter().sum();
        (0..n)
            .map(|_| {
                let u: f64 = rng.random_range(0.0..total);
                let [wc, wl, _] = self.site_weights;
                let site = if u < wc {
                    EmbolusSite::Central
                } else if u < wc + wl {
                    EmbolusSite::Lobar
                } else {
                    EmbolusSite::Segmental
                };
                let candidates: Vec<usize> = arteries
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.site == site)
                    .map(|(i, _)| i)
                    .collect();
                let vessel = candidates[rng.random_range(0..candidates.len())];
                let c: f64 = rng.random_range(0.2..0.8);
                let half = uniform(rng, self.half_span);
                Embolus {
                    site,
                    vessel,
                    span: [(c - half).max(0.0), (c + half).min(1.0)],
                    relative_radius: uniform(rng, self.relative_radius),
                    hu: normal(rng, 45.0, 15.0),
                }
            })
            .collect()
    }
}

fn uniform(rng: &mut StdRng, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// Indirect signs of PE that a chest X-ray can show, each with a strength in `[0, 1]` (0 = absent).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct IndirectSigns {
    /// Enlarged pulmonary trunk and main arteries.
    pub enlarged_trunk: f64,
    /// Wedge-shaped peripheral pleural-based opacity (infarct, "Hampton's hump").
    pub wedge_opacity: f64,
    /// Small pleural effusion at a lung base.
    pub effusion: f64,
    /// Regional oligemia: a lucent, vessel-poor region ("Westermark sign").
    pub oligemia: f64,
    /// Side of the focal signs: `true` = patient left.
    pub left: bool,
}

impl IndirectSigns {
    /// Names of the four findings, in the order of [`IndirectSigns::present`] (the chest-X-ray
    /// finding each sign is read as when it has another cause than PE).
    pub const FINDINGS: [&'static str; 4] = [
        "enlarged pulmonary artery",
        "peripheral opacity",
        "pleural effusion",
        "hyperlucent region",
    ];

    /// Which of the four findings are present (strength above 0), in [`IndirectSigns::FINDINGS`] order.
    pub fn present(&self) -> [bool; 4] {
        [
            self.enlarged_trunk > 0.0,
            self.wedge_opacity > 0.0,
            self.effusion > 0.0,
            self.oligemia > 0.0,
        ]
    }

    /// Whether any sign is present.
    pub fn any(&self) -> bool {
        self.enlarged_trunk > 0.0
            || self.wedge_opacity > 0.0
            || self.effusion > 0.0
            || self.oligemia > 0.0
    }
}

/// One artery segment of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Vessel {
    /// Start point (LPS mm).
    pub a: [f64; 3],
    /// End point (LPS mm).
    pub b: [f64; 3],
    /// Lumen radius at the start (mm).
    pub ra: f64,
    /// Lumen radius at the end (mm).
    pub rb: f64,
    /// Level in the tree.
    pub site: EmbolusSite,
    /// Patient left (`true`) or right; the trunk counts as left.
    pub left: bool,
}

/// Per-patient anatomy and acquisition, drawn from a seeded generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anatomy {
    /// Body semi-axes (x, y) in mm.
    pub body: [f64; 2],
    /// Subcutaneous fat thickness in mm.
    pub fat: f64,
    /// Lung centres are at `(+-lung_x, lung_y, lung_z)`.
    pub lung_centre: [f64; 3],
    /// Lung semi-axes.
    pub lung_radii: [f64; 3],
    /// Mean HU of lung parenchyma.
    pub lung_hu: f64,
    /// Heart centre.
    pub heart: [f64; 3],
    /// Heart semi-axes.
    pub heart_radii: [f64; 3],
    /// HU of contrast in the pulmonary arteries and right heart.
    pub pa_hu: f64,
    /// HU of contrast in the aorta and left heart.
    pub aorta_hu: f64,
    /// Pulmonary artery tree.
    pub arteries: Vec<Vessel>,
    /// Aorta as tube segments.
    pub aorta: Vec<Vessel>,
    /// Voxel noise standard deviation in HU.
    pub noise_hu: f64,
    /// Lung texture waves: (wave vector in rad/mm, phase).
    pub texture: Vec<([f64; 3], f64)>,
    /// Emboli (empty for a PE-negative patient).
    pub emboli: Vec<Embolus>,
    /// Contrast-mixing artefacts: faint, non-PE filling defects (a confounder for CT readers).
    pub artefacts: Vec<Embolus>,
    /// Indirect signs.
    pub signs: IndirectSigns,
    /// Height of the rib pairs (mm).
    pub ribs_z: Vec<f64>,
}

fn normal(rng: &mut StdRng, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
}

impl Anatomy {
    /// Draws a patient's anatomy; `pe` adds emboli drawn from `emboli`; `signs` are painted as given.
    pub fn sample(
        rng: &mut StdRng,
        pe: bool,
        signs: IndirectSigns,
        emboli: &EmbolusDistribution,
    ) -> Self {
        let s = normal(rng, 1.0, 0.06).clamp(0.85, 1.15);
        let body = [normal(rng, 150.0, 10.0) * s, normal(rng, 105.0, 8.0) * s];
        let lung_centre = [
            normal(rng, 68.0, 4.0) * s,
            normal(rng, 8.0, 4.0),
            normal(rng, 25.0, 8.0),
        ];
        let lung_radii = [
            normal(rng, 52.0, 4.0) * s,
            normal(rng, 78.0, 5.0) * s,
            normal(rng, 105.0, 8.0) * s,
        ];
        let heart = [
            normal(rng, 22.0, 5.0),
            normal(rng, -28.0, 5.0),
            normal(rng, -55.0, 8.0),
        ];
        let heart_radii = [
            normal(rng, 62.0, 5.0) * s,
            normal(rng, 48.0, 4.0) * s,
            normal(rng, 52.0, 4.0) * s,
        ];
        let pa_hu = rng.random_range(220.0..480.0);
        let aorta_hu = pa_hu * rng.random_range(0.45..0.8);
        let j = |rng: &mut StdRng, p: [f64; 3], sd: f64| -> [f64; 3] {
            [
                normal(rng, p[0], sd),
                normal(rng, p[1], sd),
                normal(rng, p[2], sd),
            ]
        };
        let enlarge = 1.0 + 0.45 * signs.enlarged_trunk;
        let trunk_r = normal(rng, 13.0, 1.2) * enlarge;
        let rvot = j(rng, [8.0, -48.0, -30.0], 3.0);
        let bif = j(rng, [4.0, -12.0, 12.0], 3.0);
        let mut arteries = vec![Vessel {
            a: rvot,
            b: bif,
            ra: trunk_r,
            rb: trunk_r,
            site: EmbolusSite::Central,
            left: true,
        }];
        for left in [true, false] {
            let sx = if left { 1.0 } else { -1.0 };
            let hilum = j(
                rng,
                [sx * 0.8 * lung_centre[0], 4.0, lung_centre[2] - 12.0],
                3.0,
            );
            let main_r = normal(rng, 10.0, 0.8) * enlarge;
            arteries.push(Vessel {
                a: bif,
                b: hilum,
                ra: main_r,
                rb: main_r * 0.9,
                site: EmbolusSite::Central,
                left,
            });
            // Lobar arteries towards the upper, middle/lingular and lower lung, each with two segmentals.
            let targets = [[0.9, -0.2, 0.75], [1.2, -0.45, -0.2], [1.0, 0.45, -0.7]];
            for t in targets {
                let end = j(
                    rng,
                    [
                        sx * lung_centre[0] * t[0],
                        lung_centre[1] + lung_radii[1] * t[1],
                        lung_centre[2] + lung_radii[2] * t[2] * 0.8,
                    ],
                    4.0,
                );
                let mid = lerp3(hilum, end, 0.5);
                let lobar_r = normal(rng, 6.0, 0.6);
                arteries.push(Vessel {
                    a: hilum,
                    b: mid,
                    ra: lobar_r,
                    rb: lobar_r * 0.85,
                    site: EmbolusSite::Lobar,
                    left,
                });
                for spread in [-1.0, 1.0] {
                    let seg_end = [
                        end[0] + sx * 12.0 + normal(rng, 0.0, 6.0),
                        end[1] + spread * 18.0 + normal(rng, 0.0, 6.0),
                        end[2] + spread * 14.0 + normal(rng, 0.0, 6.0),
                    ];
                    let r = normal(rng, 3.8, 0.4);
                    arteries.push(Vessel {
                        a: mid,
                        b: seg_end,
                        ra: r,
                        rb: r * 0.7,
                        site: EmbolusSite::Segmental,
                        left,
                    });
                }
            }
        }
        let ar = normal(rng, 13.0, 1.0);
        let asc0 = j(rng, [-18.0, -22.0, -45.0], 3.0);
        let asc1 = j(rng, [-16.0, -22.0, 35.0], 3.0);
        let arch = j(rng, [0.0, 5.0, 55.0], 3.0);
        let desc0 = j(rng, [22.0, 38.0, 35.0], 3.0);
        let desc1 = j(rng, [20.0, 45.0, -160.0], 3.0);
        let aorta = [(asc0, asc1), (asc1, arch), (arch, desc0), (desc0, desc1)]
            .into_iter()
            .map(|(a, b)| Vessel {
                a,
                b,
                ra: ar,
                rb: ar,
                site: EmbolusSite::Central,
                left: false,
            })
            .collect();
        let texture = (0..6)
            .map(|_| {
                let wavelength: f64 = rng.random_range(12.0..45.0);
                let dir = [
                    normal(rng, 0.0, 1.0),
                    normal(rng, 0.0, 1.0),
                    normal(rng, 0.0, 1.0),
                ];
                let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2])
                    .sqrt()
                    .max(1e-9);
                let k = std::f64::consts::TAU / wavelength / n;
                (
                    [dir[0] * k, dir[1] * k, dir[2] * k],
                    rng.random_range(0.0..std::f64::consts::TAU),
                )
            })
            .collect();
        let emboli = if pe {
            emboli.draw(rng, &arteries)
        } else {
            Vec::new()
        };
        let rib0 = normal(rng, -150.0, 8.0);
        let ribs_z = (0..12)
            .map(|n| rib0 + n as f64 * normal(rng, 26.0, 1.0) * s)
            .collect();
        Self {
            body,
            fat: rng.random_range(8.0..30.0),
            lung_centre,
            lung_radii,
            lung_hu: rng.random_range(-880.0..-820.0),
            heart,
            heart_radii,
            pa_hu,
            aorta_hu,
            arteries,
            aorta,
            noise_hu: rng.random_range(10.0..25.0),
            texture,
            emboli,
            artefacts: Vec::new(),
            signs,
            ribs_z,
        }
    }
}

impl Anatomy {
    /// Adds a contrast-mixing artefact in the trunk or a main artery: a region of incompletely
    /// opacified blood, darker than contrast but brighter than clot.
    pub fn add_mixing_artefact(&mut self, rng: &mut StdRng) {
        let central: Vec<usize> = self
            .arteries
            .iter()
            .enumerate()
            .filter(|(_, v)| v.site == EmbolusSite::Central)
            .map(|(i, _)| i)
            .collect();
        let vessel = central[rng.random_range(0..central.len())];
        let c = rng.random_range(0.3..0.7);
        let half = rng.random_range(0.1..0.25);
        self.artefacts.push(Embolus {
            site: EmbolusSite::Central,
            vessel,
            span: [c - half, c + half],
            relative_radius: rng.random_range(0.6..1.0),
            hu: self.pa_hu * rng.random_range(0.3..0.6),
        });
    }
}

/// A generated CT with its ground-truth label map.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// The CT in HU.
    pub ct: Volume,
    /// Per-voxel [`label`]s (artery lumen, embolus, lung), same layout as the CT.
    pub labels: Vec<u8>,
    /// The anatomy it was drawn from.
    pub anatomy: Anatomy,
}

impl Phantom {
    /// Fraction of arterial lumen voxels (ground-truth labels) whose HU lies in the clot band
    /// `[-50, 150]`: the statistic of a simple CT reader that knows where the arteries are. Emboli raise
    /// it; contrast-mixing artefacts and poor opacification raise it in some negatives too.
    pub fn filling_defect_fraction(&self) -> f64 {
        let (mut lumen, mut defect) = (0usize, 0usize);
        for (v, &l) in self.ct.data().iter().zip(&self.labels) {
            if l == label::ARTERY || l == label::EMBOLUS {
                lumen += 1;
                if (-50.0..=150.0).contains(v) {
                    defect += 1;
                }
            }
        }
        defect as f64 / lumen.max(1) as f64
    }
}

struct Canvas {
    data: Vec<f32>,
    labels: Vec<u8>,
    dims: [usize; 3],
    geometry: Geometry,
    voxel: f64,
}

impl Canvas {
    fn position(&self, i: usize, j: usize, k: usize) -> P3 {
        self.geometry
            .index_to_physical([i as f64, j as f64, k as f64])
    }

    /// Index range covering a box in mm (identity direction).
    fn range(&self, lo: P3, hi: P3) -> [(usize, usize); 3] {
        let a = self.geometry.physical_to_index(lo);
        let b = self.geometry.physical_to_index(hi);
        let mut r = [(0, 0); 3];
        for d in 0..3 {
            let l = (a[d].min(b[d]) - 1.0).floor().max(0.0) as usize;
            let h = ((a[d].max(b[d]) + 2.0).ceil().max(0.0) as usize).min(self.dims[d]);
            r[d] = (l.min(h), h);
        }
        r
    }

    /// Blends `hu(p)` into the shape with partial-volume weight times `weight(p, index)`.
    fn paint(
        &mut self,
        shape: &Shape,
        hu: impl Fn(P3) -> f64,
        weight: impl Fn(P3, usize, &Self) -> f64,
        label: Option<(u8, f64)>,
    ) {
        let (lo, hi) = shape.bounds();
        let [ri, rj, rk] = self.range(lo, hi);
        for k in rk.0..rk.1 {
            for j in rj.0..rj.1 {
                for i in ri.0..ri.1 {
                    let p = self.position(i, j, k);
                    let o = (k * self.dims[1] + j) * self.dims[0] + i;
                    let a = coverage(shape.distance(p), self.voxel) * weight(p, o, self);
                    if a <= 0.0 {
                        continue;
                    }
                    let v = self.data[o] as f64;
                    self.data[o] = (v + a * (hu(p) - v)) as f32;
                    if let Some((l, threshold)) = label {
                        if a >= threshold {
                            self.labels[o] = l;
                        }
                    }
                }
            }
        }
    }
}

fn always(_: P3, _: usize, _: &Canvas) -> f64 {
    1.0
}

/// Renders an anatomy on a grid; `rng` draws the voxel noise.
pub fn render_phantom(
    anatomy: &Anatomy,
    config: &PhantomConfig,
    rng: &mut StdRng,
) -> Result<Phantom> {
    config.validate()?;
    let dims = config.dims;
    let mut geometry = Geometry::with_spacing(config.spacing);
    for d in 0..3 {
        geometry.origin[d] = -(dims[d] as f64 - 1.0) / 2.0 * config.spacing[d];
    }
    let n = dims.iter().product();
    let voxel = (config.spacing[0] * config.spacing[1] * config.spacing[2]).cbrt();
    let mut c = Canvas {
        data: vec![-1000.0; n],
        labels: vec![label::BACKGROUND; n],
        dims,
        geometry,
        voxel,
    };
    let a = anatomy;
    let sg = a.signs;
    let zr = [-1e4, 1e4];
    // Body: fat, then muscle inside it.
    c.paint(
        &Shape::Cylinder {
            c: [0.0, 0.0],
            r: a.body,
            z: zr,
        },
        |_| -100.0,
        always,
        None,
    );
    let inner = [a.body[0] - a.fat, a.body[1] - a.fat * 0.8];
    c.paint(
        &Shape::Cylinder {
            c: [0.0, 0.0],
            r: inner,
            z: zr,
        },
        |_| 45.0,
        always,
        None,
    );
    // Lungs with texture; oligemia makes the lower part of one lung more lucent. The lungs stay
    // inside the rib cage: an ellipsoid drawn wider than the cavity would otherwise cut through the
    // chest wall and open the lungs to the outside air, which no real chest does (and which defeats
    // any lung segmentation that looks for enclosed air).
    let cavity = Shape::Cylinder {
        c: [0.0, 0.0],
        r: [inner[0] - 14.0, inner[1] - 12.0],
        z: zr,
    };
    let inside_cavity = move |p: P3, _: usize, cv: &Canvas| coverage(cavity.distance(p), cv.voxel);
    for left in [true, false] {
        let sx = if left { 1.0 } else { -1.0 };
        let centre = [sx * a.lung_centre[0], a.lung_centre[1], a.lung_centre[2]];
        let olig = if sg.left == left { sg.oligemia } else { 0.0 };
        let tex = a.texture.clone();
        let lung_hu = a.lung_hu;
        let lz = centre[2];
        let hu = move |p: P3| {
            let t: f64 = tex
                .iter()
                .map(|(k, ph)| (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + ph).sin())
                .sum::<f64>();
            let lucent = if p[2] < lz { -70.0 * olig } else { 0.0 };
            lung_hu + 18.0 * t + lucent
        };
        c.paint(
            &Shape::Ellipsoid {
                c: centre,
                r: a.lung_radii,
            },
            hu,
            inside_cavity,
            Some((label::LUNG, 0.5)),
        );
    }
    // Trachea (air) above the carina.
    let carina = [0.0, 2.0, a.lung_centre[2] + 10.0];
    c.paint(
        &Shape::Tube {
            a: carina,
            b: [0.0, -5.0, 400.0],
            ra: 9.0,
            rb: 9.0,
        },
        |_| -1000.0,
        always,
        None,
    );
    // Mediastinum and heart.
    c.paint(
        &Shape::Ellipsoid {
            c: [0.0, -5.0, a.lung_centre[2]],
            r: [28.0, 45.0, 90.0],
        },
        |_| 25.0,
        always,
        None,
    );
    c.paint(
        &Shape::Ellipsoid {
            c: a.heart,
            r: a.heart_radii,
        },
        |_| 40.0,
        always,
        None,
    );
    let hr = a.heart_radii;
    let rv = [
        a.heart[0] - 0.35 * hr[0],
        a.heart[1] - 0.3 * hr[1],
        a.heart[2],
    ];
    let lv = [
        a.heart[0] + 0.3 * hr[0],
        a.heart[1] + 0.15 * hr[1],
        a.heart[2] - 0.1 * hr[2],
    ];
    let pa_hu = a.pa_hu;
    let ao_hu = a.aorta_hu;
    c.paint(
        &Shape::Ellipsoid {
            c: rv,
            r: [0.45 * hr[0], 0.45 * hr[1], 0.55 * hr[2]],
        },
        |_| pa_hu,
        always,
        None,
    );
    c.paint(
        &Shape::Ellipsoid {
            c: lv,
            r: [0.4 * hr[0], 0.45 * hr[1], 0.5 * hr[2]],
        },
        |_| ao_hu,
        always,
        None,
    );
    for v in &a.aorta {
        c.paint(
            &Shape::Tube {
                a: v.a,
                b: v.b,
                ra: v.ra,
                rb: v.rb,
            },
            |_| ao_hu,
            always,
            None,
        );
    }
    // Signs painted inside the lung before the arteries.
    let sx = if sg.left { 1.0 } else { -1.0 };
    let lung_c = [sx * a.lung_centre[0], a.lung_centre[1], a.lung_centre[2]];
    let in_lung = |_: P3, o: usize, cv: &Canvas| {
        if cv.labels[o] == label::LUNG {
            1.0
        } else {
            0.0
        }
    };
    if sg.effusion > 0.0 {
        // Fluid layering at the posterior base of the lung.
        let base = lung_c[2] - a.lung_radii[2];
        let depth = 12.0 + 28.0 * sg.effusion;
        let e = Shape::Ellipsoid {
            c: [lung_c[0], lung_c[1] + 0.3 * a.lung_radii[1], base],
            r: [a.lung_radii[0], a.lung_radii[1], depth],
        };
        c.paint(&e, |_| 15.0, in_lung, None);
    }
    if sg.wedge_opacity > 0.0 {
        // Pleural-based wedge: a flattened ellipsoid against the lateral lower lung surface.
        let size = 18.0 + 22.0 * sg.wedge_opacity;
        let centre = [
            lung_c[0] + sx * 0.75 * a.lung_radii[0],
            lung_c[1] + 0.2 * a.lung_radii[1],
            lung_c[2] - 0.35 * a.lung_radii[2],
        ];
        let w = Shape::Ellipsoid {
            c: centre,
            r: [size * 0.8, size * 1.2, size],
        };
        c.paint(&w, |_| -100.0, in_lung, None);
    }
    // Pulmonary arteries; regional oligemia also thins the peripheral vessels on its side.
    for v in &a.arteries {
        let thin = if v.site == EmbolusSite::Segmental && v.left == sg.left {
            1.0 - 0.5 * sg.oligemia
        } else {
            1.0
        };
        let s = Shape::Tube {
            a: v.a,
            b: v.b,
            ra: v.ra
                * if v.site == EmbolusSite::Segmental {
                    thin
                } else {
                    1.0
                },
            rb: v.rb * thin,
        };
        // Only voxels (almost) entirely inside the lumen are labelled, so partial-volume edges are not.
        c.paint(&s, |_| pa_hu, always, Some((label::ARTERY, 0.95)));
    }
    // Mixing artefacts, then emboli: both only inside the lumen of their vessel.
    for e in &a.artefacts {
        let v = a.arteries[e.vessel];
        let lumen = Shape::Tube {
            a: v.a,
            b: v.b,
            ra: v.ra,
            rb: v.rb,
        };
        let r = v.ra * e.relative_radius;
        let region = Shape::Tube {
            a: lerp3(v.a, v.b, e.span[0]),
            b: lerp3(v.a, v.b, e.span[1]),
            ra: r,
            rb: r,
        };
        let vox = c.voxel;
        let hu = e.hu;
        c.paint(
            &region,
            |_| hu,
            move |p, _, _| coverage(lumen.distance(p), vox),
            None,
        );
    }
    for e in &a.emboli {
        let v = a.arteries[e.vessel];
        let lumen = Shape::Tube {
            a: v.a,
            b: v.b,
            ra: v.ra,
            rb: v.rb,
        };
        let p0 = lerp3(v.a, v.b, e.span[0]);
        let p1 = lerp3(v.a, v.b, e.span[1]);
        let r0 = (v.ra + e.span[0] * (v.rb - v.ra)) * e.relative_radius;
        let r1 = (v.ra + e.span[1] * (v.rb - v.ra)) * e.relative_radius;
        let clot = Shape::Tube {
            a: p0,
            b: p1,
            ra: r0,
            rb: r1,
        };
        let vox = c.voxel;
        let hu = e.hu;
        c.paint(
            &clot,
            |_| hu,
            move |p, _, _| coverage(lumen.distance(p), vox),
            None,
        );
        // Label the clot voxels that are mostly clot and inside the lumen.
        let (lo, hi) = clot.bounds();
        let [ri, rj, rk] = c.range(lo, hi);
        for k in rk.0..rk.1 {
            for j in rj.0..rj.1 {
                for i in ri.0..ri.1 {
                    let p = c.position(i, j, k);
                    let o = (k * dims[1] + j) * dims[0] + i;
                    if clot.distance(p) <= 0.0 && lumen.distance(p) <= 0.0 {
                        c.labels[o] = label::EMBOLUS;
                    }
                }
            }
        }
    }
    // Skeleton: spine, sternum, ribs (costal cartilage anteriorly).
    let spine_y = a.body[1] * 0.62;
    c.paint(
        &Shape::Tube {
            a: [0.0, spine_y, -1e3],
            b: [0.0, spine_y, 1e3],
            ra: 17.0,
            rb: 17.0,
        },
        |p| {
            // Discs every 27 mm.
            if (p[2] / 27.0).rem_euclid(1.0) < 0.18 {
                90.0
            } else {
                420.0
            }
        },
        always,
        None,
    );
    c.paint(
        &Shape::Tube {
            a: [0.0, spine_y + 26.0, -1e3],
            b: [0.0, spine_y + 26.0, 1e3],
            ra: 8.0,
            rb: 8.0,
        },
        |_| 500.0,
        always,
        None,
    );
    let sternum_y = -(a.body[1] - a.fat * 0.8) + 8.0;
    c.paint(
        &Shape::Cylinder {
            c: [0.0, sternum_y],
            r: [14.0, 6.0],
            z: [a.heart[2] - 10.0, a.lung_centre[2] + 80.0],
        },
        |_| 380.0,
        always,
        None,
    );
    let rib_r = [inner[0] - 10.0, inner[1] - 8.0];
    for &z0 in &a.ribs_z {
        let ring = Shape::Ring {
            r: rib_r,
            z0,
            slope: 0.35,
            t: 5.0,
        };
        let inner_y = inner[1];
        c.paint(
            &ring,
            move |p| {
                if p[1] < -0.7 * inner_y && p[0].abs() < 45.0 {
                    120.0
                } else {
                    650.0
                }
            },
            always,
            None,
        );
    }
    // Scanner noise; HU are whole numbers, as stored by scanners (so int16 NIfTI is lossless).
    if let Ok(noise) = Normal::new(0.0, a.noise_hu) {
        for v in c.data.iter_mut() {
            *v = (*v + noise.sample(rng) as f32).round();
        }
    }
    let mut ct = Volume::new(c.data, dims, c.geometry)?;
    ct.meta.modality = Some("CT".into());
    ct.meta.intensity = Intensity::Hounsfield;
    ct.meta.rescale_slope = 1.0;
    Ok(Phantom {
        ct,
        labels: c.labels,
        anatomy: anatomy.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hu_values_are_plausible_and_emboli_sit_inside_arteries() {
        let mut rng = StdRng::seed_from_u64(3);
        let signs = IndirectSigns {
            enlarged_trunk: 0.5,
            wedge_opacity: 1.0,
            effusion: 1.0,
            oligemia: 1.0,
            left: true,
        };
        let anatomy = Anatomy::sample(&mut rng, true, signs, &EmbolusDistribution::default());
        assert!(!anatomy.emboli.is_empty());
        let p = render_phantom(&anatomy, &PhantomConfig::default(), &mut rng).unwrap();
        let (lo, hi, _) = p.ct.stats().unwrap();
        assert!(lo < -900.0 && hi > 400.0, "{lo} {hi}");
        let mean_of = |l: u8| {
            let (s, n) =
                p.ct.data()
                    .iter()
                    .zip(&p.labels)
                    .filter(|(_, &x)| x == l)
                    .fold((0.0, 0), |(s, n), (v, _)| (s + *v as f64, n + 1));
            (s / n.max(1) as f64, n)
        };
        let (lung, nl) = mean_of(label::LUNG);
        let (artery, na) = mean_of(label::ARTERY);
        let (emb, ne) = mean_of(label::EMBOLUS);
        assert!(nl > 1000 && na > 20, "{nl} {na}");
        assert!(lung < -600.0 && artery > 150.0, "{lung} {artery}");
        if ne > 0 {
            assert!(emb < artery - 50.0, "{emb} vs {artery}");
        }
        // Every embolus voxel lies inside the lumen of its vessel.
        let g = p.ct.geometry();
        let [nx, ny, _] = p.ct.dims();
        for (o, &l) in p.labels.iter().enumerate() {
            if l == label::EMBOLUS {
                let (i, j, k) = (o % nx, (o / nx) % ny, o / (nx * ny));
                let pos = g.index_to_physical([i as f64, j as f64, k as f64]);
                let inside = anatomy.emboli.iter().any(|e| {
                    let v = anatomy.arteries[e.vessel];
                    Shape::Tube {
                        a: v.a,
                        b: v.b,
                        ra: v.ra,
                        rb: v.rb,
                    }
                    .distance(pos)
                        <= 1e-9
                });
                assert!(inside);
            }
        }
    }

    #[test]
    fn lungs_are_enclosed_so_the_lung_crop_finds_them() {
        for (seed, config) in [
            (0, PhantomConfig::default()),
            (
                1,
                PhantomConfig {
                    dims: [24, 20, 24],
                    spacing: [14.0, 14.0, 13.0],
                },
            ),
        ] {
            let mut rng = StdRng::seed_from_u64(seed);
            let anatomy = Anatomy::sample(
                &mut rng,
                false,
                IndirectSigns::default(),
                &EmbolusDistribution::default(),
            );
            let p = render_phantom(&anatomy, &config, &mut rng).unwrap();
            let mask = crate::lung::LungSegmentation::default()
                .segment(&p.ct)
                .unwrap();
            let lung_voxels = p.labels.iter().filter(|&&l| l == label::LUNG).count();
            let segmented = mask.data().iter().filter(|&&m| m > 0.5).count();
            // The threshold mask finds (most of) the painted lungs, and nothing like the whole body.
            assert!(
                segmented as f64 > 0.8 * lung_voxels as f64
                    && (segmented as f64) < 1.3 * lung_voxels as f64,
                "{segmented} segmented vs {lung_voxels} painted"
            );
        }
    }

    #[test]
    fn embolus_distribution_sets_sites_and_rejects_bad_values() {
        let only_central = EmbolusDistribution {
            site_weights: [1.0, 0.0, 0.0],
            mean_count: 3.0,
            ..Default::default()
        };
        let mut counts = 0;
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let a = Anatomy::sample(&mut rng, true, IndirectSigns::default(), &only_central);
            assert!(!a.emboli.is_empty() && a.emboli.len() <= 8);
            assert!(a.emboli.iter().all(|e| e.site == EmbolusSite::Central));
            assert!(a
                .emboli
                .iter()
                .all(|e| (0.85..=1.3).contains(&e.relative_radius)));
            counts += a.emboli.len();
        }
        // Mean count 3 (one plus Bernoulli extras): 20 patients carry about 60 emboli.
        assert!((40..=80).contains(&counts), "{counts}");
        let mut rng = StdRng::seed_from_u64(0);
        let negative = Anatomy::sample(&mut rng, false, IndirectSigns::default(), &only_central);
        assert!(negative.emboli.is_empty());
        for bad in [
            EmbolusDistribution {
                site_weights: [0.0, 0.0, 0.0],
                ..Default::default()
            },
            EmbolusDistribution {
                site_weights: [f64::NAN, 1.0, 0.0],
                ..Default::default()
            },
            EmbolusDistribution {
                mean_count: 0.5,
                ..Default::default()
            },
            EmbolusDistribution {
                half_span: [0.3, 0.2],
                ..Default::default()
            },
            EmbolusDistribution {
                relative_radius: [0.0, 1.0],
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(EmbolusDistribution::default().validate().is_ok());
    }
}
