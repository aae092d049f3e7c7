//! t-SNE (van der Maaten & Hinton 2008) to two dimensions, exact or Barnes–Hut (van der Maaten
//! 2014), with scikit-learn's defaults and optimiser, and the embedding-quality scores used to test
//! it (trustworthiness, k-nearest-neighbour preservation).
//!
//! Mirrors `sklearn.manifold.TSNE` (1.9.1): squared Euclidean input distances; per-point Gaussian
//! bandwidths by binary search on the perplexity (over all points for the exact method, over the
//! `⌊3·perplexity + 1⌋` nearest neighbours for Barnes–Hut); symmetrised `P`; Student-t `Q`; gradient
//! descent with momentum 0.5 → 0.8 and delta-bar-delta gains (+0.2 / ×0.8, at least 0.01); early
//! exaggeration 12 for the first 250 iterations; learning rate `max(N / 12 / 4, 50)`; PCA
//! initialisation scaled so that the first coordinate has standard deviation 1e-4.
//!
//! Results are deterministic for a given seed (the seed drives the random initialisation and the
//! PCA power iteration's start), independent of the thread count. They do not reproduce
//! scikit-learn's coordinates (a different PCA solver sign convention and floating-point order),
//! only its behaviour.

use crate::error::{check_finite, EvalError, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;

/// Which gradient to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TsneMethod {
    /// Exact below [`TsneConfig::exact_max_points`] samples, Barnes–Hut above.
    Auto,
    /// O(N²) per iteration.
    Exact,
    /// O(N log N) per iteration with the quadtree approximation.
    BarnesHut,
}

/// How the embedding starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TsneInit {
    /// The first two principal components, scaled to standard deviation 1e-4 (sklearn's default).
    Pca,
    /// Seeded Gaussian noise with standard deviation 1e-4.
    Random,
}

/// Settings of a t-SNE run (defaults as scikit-learn's `TSNE`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TsneConfig {
    /// Perplexity, the effective number of neighbours (30). Must be below the number of samples.
    pub perplexity: f64,
    /// Factor on `P` during the early-exaggeration phase (12).
    pub early_exaggeration: f64,
    /// Length of the early-exaggeration phase, in iterations (250).
    pub exaggeration_iters: usize,
    /// Learning rate; `None` is sklearn's `'auto'`, `max(N / early_exaggeration / 4, 50)`.
    pub learning_rate: Option<f64>,
    /// Total number of iterations (1000).
    pub max_iter: usize,
    /// Stop when the gradient norm falls below this (1e-7).
    pub min_grad_norm: f64,
    /// Barnes–Hut opening angle θ (0.5).
    pub theta: f64,
    /// Exact or Barnes–Hut.
    pub method: TsneMethod,
    /// Largest N for which [`TsneMethod::Auto`] uses the exact gradient (1000).
    pub exact_max_points: usize,
    /// Initialisation.
    pub init: TsneInit,
    /// Seed.
    pub seed: u64,
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            early_exaggeration: 12.0,
            exaggeration_iters: 250,
            learning_rate: None,
            max_iter: 1000,
            min_grad_norm: 1e-7,
            theta: 0.5,
            method: TsneMethod::Auto,
            exact_max_points: 1000,
            init: TsneInit::Pca,
            seed: 0,
            progress: true,
        }
    }
}

/// A 2-D t-SNE embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TsneEmbedding {
    /// One (x, y) point per input row.
    pub points: Vec<[f64; 2]>,
    /// KL(P‖Q) at the end (with the Barnes–Hut normalisation when that method ran).
    pub kl_divergence: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the Barnes–Hut gradient was used.
    pub barnes_hut: bool,
}

const MACHINE_EPSILON: f64 = f64::EPSILON;

/// Largest N accepted by the exact method (its dense P takes 8·N² bytes: 800 MB at the limit).
pub const EXACT_LIMIT: usize = 10_000;

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Row `i`'s conditional probabilities over `dists` (squared distances to its candidates), with
/// the bandwidth found by binary search so that the entropy is `ln(perplexity)`.
fn conditional_row(dists: &[f64], perplexity: f64) -> Vec<f64> {
    let desired = perplexity.ln();
    // Shifting by the smallest distance leaves P unchanged and avoids underflow in high dimension.
    let dmin = dists.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut beta, mut beta_min, mut beta_max) = (1.0, f64::NEG_INFINITY, f64::INFINITY);
    let mut p = vec![0.0; dists.len()];
    for _ in 0..100 {
        let mut sum = 0.0;
        for (pj, &d) in p.iter_mut().zip(dists) {
            *pj = (-(d - dmin) * beta).exp();
            sum += *pj;
        }
        if sum == 0.0 {
            sum = 1e-8;
        }
        let mut sum_dp = 0.0;
        for (pj, &d) in p.iter_mut().zip(dists) {
            *pj /= sum;
            sum_dp += (d - dmin) * *pj;
        }
        let entropy = sum.ln() + beta * sum_dp;
        let diff = entropy - desired;
        if diff.abs() <= 1e-5 {
            break;
        }
        if diff > 0.0 {
            beta_min = beta;
            beta = if beta_max.is_infinite() {
                beta * 2.0
            } else {
                (beta + beta_max) / 2.0
            };
        } else {
            beta_max = beta;
            beta = if beta_min.is_infinite() {
                beta / 2.0
            } else {
                (beta + beta_min) / 2.0
            };
        }
    }
    p
}

/// Symmetric sparse joint probabilities in CSR form.
struct SparseP {
    offsets: Vec<usize>,
    cols: Vec<usize>,
    vals: Vec<f64>,
}

fn joint_p_exact(x: &[Vec<f64>], perplexity: f64) -> Vec<f64> {
    let n = x.len();
    let rows: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| sq_dist(&x[i], &x[j]))
                .collect();
            conditional_row(&d, perplexity)
        })
        .collect();
    let mut p = vec![0.0; n * n];
    for (i, row) in rows.iter().enumerate() {
        for (k, &v) in row.iter().enumerate() {
            let j = if k < i { k } else { k + 1 };
            p[i * n + j] += v;
            p[j * n + i] += v;
        }
    }
    let total: f64 = p.iter().sum();
    for v in &mut p {
        *v = (*v / total).max(MACHINE_EPSILON);
    }
    for i in 0..n {
        p[i * n + i] = 0.0;
    }
    p
}

fn joint_p_knn(x: &[Vec<f64>], perplexity: f64) -> SparseP {
    let n = x.len();
    let k = ((3.0 * perplexity + 1.0) as usize).min(n - 1);
    let rows: Vec<(Vec<usize>, Vec<f64>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut d: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (sq_dist(&x[i], &x[j]), j))
                .collect();
            if k < d.len() {
                d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                d.truncate(k);
            }
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let dists: Vec<f64> = d.iter().map(|t| t.0).collect();
            (
                d.iter().map(|t| t.1).collect(),
                conditional_row(&dists, perplexity),
            )
        })
        .collect();
    let mut triplets: Vec<(usize, usize, f64)> = Vec::with_capacity(2 * n * k);
    for (i, (cols, vals)) in rows.iter().enumerate() {
        for (&j, &v) in cols.iter().zip(vals) {
            triplets.push((i, j, v));
            triplets.push((j, i, v));
        }
    }
    triplets.sort_by_key(|t| (t.0, t.1));
    let mut offsets = vec![0usize; n + 1];
    let mut cols = Vec::with_capacity(triplets.len());
    let mut vals: Vec<f64> = Vec::with_capacity(triplets.len());
    let mut last = None;
    for (i, j, v) in triplets {
        if last == Some((i, j)) {
            *vals.last_mut().expect("merged entry exists") += v;
        } else {
            cols.push(j);
            vals.push(v);
            offsets[i + 1] += 1;
            last = Some((i, j));
        }
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let total: f64 = vals.iter().sum();
    for v in &mut vals {
        *v = (*v / total).max(MACHINE_EPSILON);
    }
    SparseP {
        offsets,
        cols,
        vals,
    }
}

/// A quadtree over the current embedding, storing each cell's point count and centre of mass.
struct QuadTree {
    nodes: Vec<QuadNode>,
}

#[derive(Clone)]
struct QuadNode {
    center: [f64; 2],
    half: f64,
    com: [f64; 2],
    count: usize,
    /// Index of the first child (four consecutive nodes), or 0 for a leaf.
    children: usize,
    /// A point stored in this leaf (leaves hold one point, or several identical ones).
    point: Option<[f64; 2]>,
}

const MAX_DEPTH: usize = 48;

impl QuadTree {
    fn build(y: &[[f64; 2]]) -> Self {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in y {
            for d in 0..2 {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        let center = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        let half = ((hi[0] - lo[0]).max(hi[1] - lo[1]) / 2.0).max(1e-12) * (1.0 + 1e-9);
        let mut tree = QuadTree {
            nodes: vec![QuadNode::new(center, half)],
        };
        for p in y {
            tree.insert(*p);
        }
        tree
    }

    fn insert(&mut self, p: [f64; 2]) {
        let mut idx = 0;
        let mut depth = 0;
        loop {
            {
                let node = &mut self.nodes[idx];
                let c = node.count as f64;
                node.com = [
                    (node.com[0] * c + p[0]) / (c + 1.0),
                    (node.com[1] * c + p[1]) / (c + 1.0),
                ];
                node.count += 1;
                if node.children == 0 {
                    match node.point {
                        None => {
                            node.point = Some(p);
                            return;
                        }
                        Some(q) if q == p || depth >= MAX_DEPTH => return,
                        Some(_) => {}
                    }
                }
            }
            if self.nodes[idx].children == 0 {
                // Split the leaf and push its old point(s) one level down.
                let (center, half) = (self.nodes[idx].center, self.nodes[idx].half);
                let old = self.nodes[idx].point.take().expect("occupied leaf");
                let old_count = self.nodes[idx].count - 1;
                let first = self.nodes.len();
                for q in 0..4 {
                    let cx = center[0] + if q & 1 == 1 { half / 2.0 } else { -half / 2.0 };
                    let cy = center[1] + if q & 2 == 2 { half / 2.0 } else { -half / 2.0 };
                    self.nodes.push(QuadNode::new([cx, cy], half / 2.0));
                }
                self.nodes[idx].children = first;
                let child = first + Self::quadrant(center, old);
                let node = &mut self.nodes[child];
                node.point = Some(old);
                node.count = old_count;
                node.com = old;
            }
            let node = &self.nodes[idx];
            idx = node.children + Self::quadrant(node.center, p);
            depth += 1;
        }
    }

    fn quadrant(center: [f64; 2], p: [f64; 2]) -> usize {
        usize::from(p[0] > center[0]) | (usize::from(p[1] > center[1]) << 1)
    }

    /// Repulsive force numerator on `p` and its contribution to the normaliser Z.
    fn repulsion(&self, p: [f64; 2], theta: f64) -> ([f64; 2], f64) {
        let mut force = [0.0; 2];
        let mut z = 0.0;
        let mut stack = vec![0usize];
        while let Some(idx) = stack.pop() {
            let node = &self.nodes[idx];
            if node.count == 0 {
                continue;
            }
            let d = [p[0] - node.com[0], p[1] - node.com[1]];
            let d2 = d[0] * d[0] + d[1] * d[1];
            let is_leaf = node.children == 0;
            if is_leaf || 2.0 * node.half < theta * d2.sqrt() {
                // A leaf at distance 0 contains the point itself.
                let count = if is_leaf && d2 == 0.0 {
                    node.count - 1
                } else {
                    node.count
                } as f64;
                let q = 1.0 / (1.0 + d2);
                z += count * q;
                force[0] += count * q * q * d[0];
                force[1] += count * q * q * d[1];
            } else {
                stack.extend(node.children..node.children + 4);
            }
        }
        (force, z)
    }
}

impl QuadNode {
    fn new(center: [f64; 2], half: f64) -> Self {
        Self {
            center,
            half,
            com: [0.0; 2],
            count: 0,
            children: 0,
            point: None,
        }
    }
}

enum Affinities {
    Dense(Vec<f64>),
    Sparse(SparseP),
}

/// KL divergence and gradient for the current embedding. `exaggeration` multiplies P.
fn kl_and_gradient(
    p: &Affinities,
    y: &[[f64; 2]],
    exaggeration: f64,
    theta: f64,
    grad: &mut [[f64; 2]],
) -> f64 {
    let n = y.len();
    match p {
        Affinities::Dense(p) => {
            let rows: Vec<(f64, Vec<f64>)> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let mut z = 0.0;
                    let num: Vec<f64> = (0..n)
                        .map(|j| {
                            if i == j {
                                0.0
                            } else {
                                let q = 1.0 / (1.0 + sq_dist(&y[i], &y[j]));
                                z += q;
                                q
                            }
                        })
                        .collect();
                    (z, num)
                })
                .collect();
            let z: f64 = rows.iter().map(|r| r.0).sum();
            let parts: Vec<([f64; 2], f64)> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let num = &rows[i].1;
                    let mut g = [0.0; 2];
                    let mut kl = 0.0;
                    for j in 0..n {
                        if i == j {
                            continue;
                        }
                        let pij = p[i * n + j] * exaggeration;
                        let qij = (num[j] / z).max(MACHINE_EPSILON);
                        kl += pij * (pij.max(MACHINE_EPSILON) / qij).ln();
                        let c = 4.0 * (pij - qij) * num[j];
                        g[0] += c * (y[i][0] - y[j][0]);
                        g[1] += c * (y[i][1] - y[j][1]);
                    }
                    (g, kl)
                })
                .collect();
            let mut kl = 0.0;
            for (i, (g, k)) in parts.into_iter().enumerate() {
                grad[i] = g;
                kl += k;
            }
            kl
        }
        Affinities::Sparse(sp) => {
            let tree = QuadTree::build(y);
            let reps: Vec<([f64; 2], f64)> =
                y.par_iter().map(|&yi| tree.repulsion(yi, theta)).collect();
            let z: f64 = reps.iter().map(|r| r.1).sum();
            let parts: Vec<([f64; 2], f64)> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let mut attr = [0.0; 2];
                    let mut kl = 0.0;
                    for k in sp.offsets[i]..sp.offsets[i + 1] {
                        let j = sp.cols[k];
                        let pij = sp.vals[k] * exaggeration;
                        let d = [y[i][0] - y[j][0], y[i][1] - y[j][1]];
                        let q = 1.0 / (1.0 + d[0] * d[0] + d[1] * d[1]);
                        attr[0] += pij * q * d[0];
                        attr[1] += pij * q * d[1];
                        let qij = (q / z).max(MACHINE_EPSILON);
                        kl += pij * (pij.max(MACHINE_EPSILON) / qij).ln();
                    }
                    let rep = reps[i].0;
                    (
                        [4.0 * (attr[0] - rep[0] / z), 4.0 * (attr[1] - rep[1] / z)],
                        kl,
                    )
                })
                .collect();
            let mut kl = 0.0;
            for (i, (g, k)) in parts.into_iter().enumerate() {
                grad[i] = g;
                kl += k;
            }
            kl
        }
    }
}

/// The first two principal components of `x` (rows), by power iteration with deflation.
fn pca2(x: &[Vec<f64>], rng: &mut StdRng) -> Vec<[f64; 2]> {
    let n = x.len();
    let dim = x[0].len();
    let mut mean = vec![0.0; dim];
    for row in x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f64;
        }
    }
    let xc: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect())
        .collect();
    // C v = Xᵀ (X v) without forming the covariance matrix.
    let apply = |v: &[f64]| -> Vec<f64> {
        let xv: Vec<f64> = xc
            .iter()
            .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect();
        let mut out = vec![0.0; dim];
        for (r, s) in xc.iter().zip(&xv) {
            for (o, a) in out.iter_mut().zip(r) {
                *o += a * s;
            }
        }
        out
    };
    let normalize = |v: &mut Vec<f64>| {
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
        }
    };
    let mut comps: Vec<Vec<f64>> = Vec::new();
    for _ in 0..2.min(dim) {
        let mut v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
        for _ in 0..300 {
            let mut w = apply(&v);
            for c in &comps {
                let dot: f64 = w.iter().zip(c).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(c).for_each(|(a, b)| *a -= dot * b);
            }
            normalize(&mut w);
            let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if delta < 1e-10 {
                break;
            }
        }
        // Deterministic sign: the largest-magnitude loading is positive.
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |acc, a| if a.abs() > acc.abs() { a } else { acc });
        if big < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        comps.push(v);
    }
    xc.iter()
        .map(|r| {
            let mut out = [0.0; 2];
            for (k, c) in comps.iter().enumerate() {
                out[k] = r.iter().zip(c).map(|(a, b)| a * b).sum();
            }
            out
        })
        .collect()
}

fn rows_from(data: &[f32], dim: usize) -> Result<Vec<Vec<f64>>> {
    if dim == 0 {
        return Err(EvalError::InvalidParameter {
            name: "dim",
            reason: "must be at least 1".into(),
        });
    }
    if data.len() % dim != 0 {
        return Err(EvalError::InvalidParameter {
            name: "data",
            reason: format!("length {} is not a multiple of dim {dim}", data.len()),
        });
    }
    let rows: Vec<Vec<f64>> = data
        .chunks(dim)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    for (i, r) in rows.iter().enumerate() {
        if let Some(j) = r.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                what: "data",
                index: i * dim + j,
                value: r[j],
            });
        }
    }
    Ok(rows)
}

/// Embeds the rows of `data` (row-major, `dim` values per row) into two dimensions.
pub fn tsne(data: &[f32], dim: usize, config: &TsneConfig) -> Result<TsneEmbedding> {
    let x = rows_from(data, dim)?;
    let n = x.len();
    if n < 3 {
        return Err(EvalError::InvalidParameter {
            name: "data",
            reason: format!("t-SNE needs at least 3 samples, got {n}"),
        });
    }
    if !(config.perplexity > 0.0 && config.perplexity < n as f64) {
        return Err(EvalError::InvalidParameter {
            name: "perplexity",
            reason: format!(
                "must lie in (0, {n}) for {n} samples, got {}",
                config.perplexity
            ),
        });
    }
    if !(config.theta >= 0.0 && config.early_exaggeration > 0.0) {
        return Err(EvalError::InvalidParameter {
            name: "theta / early_exaggeration",
            reason: "theta must be ≥ 0 and early_exaggeration > 0".into(),
        });
    }
    let barnes_hut = match config.method {
        TsneMethod::Exact => false,
        TsneMethod::BarnesHut => true,
        TsneMethod::Auto => n > config.exact_max_points,
    };
    if !barnes_hut && n > EXACT_LIMIT {
        return Err(EvalError::InvalidParameter {
            name: "method",
            reason: format!(
                "exact t-SNE keeps an N×N matrix; {n} samples exceed its limit of {EXACT_LIMIT}, \
                 use Barnes–Hut"
            ),
        });
    }
    let p = if barnes_hut {
        Affinities::Sparse(joint_p_knn(&x, config.perplexity))
    } else {
        Affinities::Dense(joint_p_exact(&x, config.perplexity))
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut y: Vec<[f64; 2]> = match config.init {
        TsneInit::Pca => {
            let mut y = pca2(&x, &mut rng);
            let mean = y.iter().map(|p| p[0]).sum::<f64>() / n as f64;
            let sd = (y.iter().map(|p| (p[0] - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let scale = if sd > 0.0 { 1e-4 / sd } else { 1.0 };
            y.iter_mut().for_each(|p| {
                p[0] *= scale;
                p[1] *= scale;
            });
            y
        }
        TsneInit::Random => (0..n)
            .map(|_| {
                let a: f64 = StandardNormal.sample(&mut rng);
                let b: f64 = StandardNormal.sample(&mut rng);
                [1e-4 * a, 1e-4 * b]
            })
            .collect(),
    };
    // PCA of degenerate data (all rows equal) leaves every point at the origin; jitter it.
    if y.iter().all(|p| p[0] == 0.0 && p[1] == 0.0) {
        for p in &mut y {
            let a: f64 = StandardNormal.sample(&mut rng);
            let b: f64 = StandardNormal.sample(&mut rng);
            *p = [1e-4 * a, 1e-4 * b];
        }
    }
    let lr = config
        .learning_rate
        .unwrap_or_else(|| (n as f64 / config.early_exaggeration / 4.0).max(50.0));
    let bar = if config.progress && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(config.max_iter as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("t-SNE {bar:30} {pos}/{len} KL {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut update = vec![[0.0; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    let mut grad = vec![[0.0; 2]; n];
    let mut kl = f64::NAN;
    let mut iterations = 0;
    for it in 0..config.max_iter {
        let early = it < config.exaggeration_iters;
        let (exaggeration, momentum) = if early {
            (config.early_exaggeration, 0.5)
        } else {
            (1.0, 0.8)
        };
        kl = kl_and_gradient(&p, &y, exaggeration, config.theta, &mut grad);
        let mut grad_norm = 0.0;
        for i in 0..n {
            for d in 0..2 {
                let g = grad[i][d];
                gains[i][d] = if update[i][d] * g < 0.0 {
                    gains[i][d] + 0.2
                } else {
                    (gains[i][d] * 0.8).max(0.01)
                };
                update[i][d] = momentum * update[i][d] - lr * gains[i][d] * g;
                y[i][d] += update[i][d];
                grad_norm += g * g;
            }
        }
        iterations = it + 1;
        if it % 50 == 0 {
            bar.set_message(format!("{kl:.4}"));
        }
        bar.inc(1);
        if !early && grad_norm.sqrt() < config.min_grad_norm {
            break;
        }
    }
    bar.finish_and_clear();
    if config.max_iter > 0 && iterations > 0 {
        let mut g = vec![[0.0; 2]; n];
        kl = kl_and_gradient(&p, &y, 1.0, config.theta, &mut g);
    }
    Ok(TsneEmbedding {
        points: y,
        kl_divergence: kl,
        iterations,
        barnes_hut,
    })
}

/// Ranks (0 = nearest) of every other point by distance from point `i`; ties by index.
fn neighbour_order(rows: &[Vec<f64>], i: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).filter(|&j| j != i).collect();
    let d: Vec<f64> = rows.iter().map(|r| sq_dist(&rows[i], r)).collect();
    idx.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
    idx
}

/// Points as rows of coordinates.
type Rows = Vec<Vec<f64>>;

fn check_embedding_pair(
    data: &[f32],
    dim: usize,
    embedding: &[[f64; 2]],
    k: usize,
) -> Result<(Rows, Rows)> {
    let x = rows_from(data, dim)?;
    crate::error::check_same_len("data rows", x.len(), "embedding", embedding.len())?;
    let flat: Vec<f64> = embedding.iter().flat_map(|p| p.iter().copied()).collect();
    check_finite("embedding", &flat)?;
    let n = x.len();
    if k == 0 || 2 * k >= n {
        return Err(EvalError::InvalidParameter {
            name: "k",
            reason: format!("must lie in [1, {}) for {n} samples, got {k}", n / 2),
        });
    }
    Ok((x, embedding.iter().map(|p| p.to_vec()).collect()))
}

/// Trustworthiness (Venna & Kaski 2001; as `sklearn.manifold.trustworthiness`): 1 minus a penalty
/// for points that are among the `k` nearest neighbours in the embedding but not in the input,
/// weighted by how far down the input ranking they are. 1 is perfect. O(N² log N).
pub fn trustworthiness(data: &[f32], dim: usize, embedding: &[[f64; 2]], k: usize) -> Result<f64> {
    let (x, e) = check_embedding_pair(data, dim, embedding, k)?;
    let n = x.len();
    let penalty: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let in_order = neighbour_order(&x, i);
            let mut rank = vec![0usize; n];
            for (r, &j) in in_order.iter().enumerate() {
                rank[j] = r + 1;
            }
            neighbour_order(&e, i)[..k]
                .iter()
                .map(|&j| (rank[j] as f64 - k as f64).max(0.0))
                .sum::<f64>()
        })
        .sum();
    let (nf, kf) = (n as f64, k as f64);
    Ok(1.0 - 2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0)) * penalty)
}

/// Mean fraction of each point's `k` nearest input-space neighbours that are also among its `k`
/// nearest neighbours in the embedding.
pub fn knn_preservation(data: &[f32], dim: usize, embedding: &[[f64; 2]], k: usize) -> Result<f64> {
    let (x, e) = check_embedding_pair(data, dim, embedding, k)?;
    let n = x.len();
    let kept: usize = (0..n)
        .into_par_iter()
        .map(|i| {
            let a = &neighbour_order(&x, i)[..k];
            let b = &neighbour_order(&e, i)[..k];
            a.iter().filter(|j| b.contains(j)).count()
        })
        .sum();
    Ok(kept as f64 / (n * k) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated Gaussian clusters in 10-D.
    fn clusters(per: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut data = Vec::new();
        let mut groups = Vec::new();
        for c in 0..3 {
            for _ in 0..per {
                for d in 0..10 {
                    let centre = if d == c { 20.0 } else { 0.0 };
                    let z: f64 = StandardNormal.sample(&mut rng);
                    data.push((centre + z) as f32);
                }
                groups.push(c);
            }
        }
        (data, groups)
    }

    fn nn_group_accuracy(points: &[[f64; 2]], groups: &[usize]) -> f64 {
        let rows: Vec<Vec<f64>> = points.iter().map(|p| p.to_vec()).collect();
        let hits = (0..rows.len())
            .filter(|&i| groups[neighbour_order(&rows, i)[0]] == groups[i])
            .count();
        hits as f64 / rows.len() as f64
    }

    fn small_config(method: TsneMethod) -> TsneConfig {
        TsneConfig {
            perplexity: 10.0,
            max_iter: 1000,
            method,
            seed: 3,
            progress: false,
            ..TsneConfig::default()
        }
    }

    #[test]
    fn perplexity_search_hits_target_entropy() {
        let d: Vec<f64> = (1..50).map(|i| (i as f64).powi(2) * 0.3).collect();
        let p = conditional_row(&d, 8.0);
        let h: f64 = -p
            .iter()
            .filter(|&&v| v > 0.0)
            .map(|v| v * v.ln())
            .sum::<f64>();
        assert!((h - 8f64.ln()).abs() < 1e-4);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn exact_separates_clusters_and_is_trustworthy() {
        let (data, groups) = clusters(25, 1);
        let e = tsne(&data, 10, &small_config(TsneMethod::Exact)).unwrap();
        assert!(!e.barnes_hut);
        assert_eq!(nn_group_accuracy(&e.points, &groups), 1.0);
        let t = trustworthiness(&data, 10, &e.points, 5).unwrap();
        assert!(t > 0.9, "trustworthiness {t}");
        assert!(e.kl_divergence.is_finite() && e.kl_divergence >= 0.0);
        // Deterministic for a seed.
        let again = tsne(&data, 10, &small_config(TsneMethod::Exact)).unwrap();
        assert_eq!(
            e.points, again.points,
            "kl {} vs {}",
            e.kl_divergence, again.kl_divergence
        );
    }

    #[test]
    fn barnes_hut_separates_clusters() {
        let (data, groups) = clusters(40, 2);
        let e = tsne(&data, 10, &small_config(TsneMethod::BarnesHut)).unwrap();
        assert!(e.barnes_hut);
        assert_eq!(nn_group_accuracy(&e.points, &groups), 1.0);
        let t = trustworthiness(&data, 10, &e.points, 5).unwrap();
        assert!(t > 0.9, "trustworthiness {t}");
        let knn = knn_preservation(&data, 10, &e.points, 5).unwrap();
        // Within-cluster neighbours are random noise, so only a fraction is preserved; a random
        // layout of 120 points would keep about 5/119 ≈ 0.04.
        assert!(knn > 0.2, "kNN preservation {knn}");
    }

    #[test]
    fn barnes_hut_gradient_matches_exact_at_theta_zero() {
        let (data, _) = clusters(8, 4);
        let x = rows_from(&data, 10).unwrap();
        let n = x.len();
        let mut rng = StdRng::seed_from_u64(9);
        let y: Vec<[f64; 2]> = (0..n)
            .map(|_| {
                [
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                ]
            })
            .collect();
        // With k = n − 1 neighbours, the kNN affinities are the exact ones.
        let dense = joint_p_exact(&x, 5.0);
        let sparse = joint_p_knn(&x, 8.0);
        let sparse_exact = SparseP {
            offsets: (0..=n).map(|i| i * (n - 1)).collect(),
            cols: (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i))
                .collect(),
            vals: (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| dense[i * n + j])
                .collect(),
        };
        assert_eq!(sparse.offsets.len(), n + 1);
        let (mut g1, mut g2) = (vec![[0.0; 2]; n], vec![[0.0; 2]; n]);
        let kl1 = kl_and_gradient(&Affinities::Dense(dense), &y, 1.0, 0.0, &mut g1);
        let kl2 = kl_and_gradient(&Affinities::Sparse(sparse_exact), &y, 1.0, 0.0, &mut g2);
        assert!((kl1 - kl2).abs() < 1e-10);
        for (a, b) in g1.iter().zip(&g2) {
            assert!((a[0] - b[0]).abs() < 1e-10 && (a[1] - b[1]).abs() < 1e-10);
        }
    }

    #[test]
    fn exact_gradient_matches_finite_differences() {
        let (data, _) = clusters(4, 5);
        let x = rows_from(&data, 10).unwrap();
        let n = x.len();
        let p = Affinities::Dense(joint_p_exact(&x, 3.0));
        let mut rng = StdRng::seed_from_u64(1);
        let y: Vec<[f64; 2]> = (0..n)
            .map(|_| {
                [
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                ]
            })
            .collect();
        let mut g = vec![[0.0; 2]; n];
        kl_and_gradient(&p, &y, 1.0, 0.0, &mut g);
        let h = 1e-6;
        for i in [0, 5, 11] {
            for d in 0..2 {
                let (mut yp, mut ym) = (y.clone(), y.clone());
                yp[i][d] += h;
                ym[i][d] -= h;
                let mut scratch = vec![[0.0; 2]; n];
                let fd = (kl_and_gradient(&p, &yp, 1.0, 0.0, &mut scratch)
                    - kl_and_gradient(&p, &ym, 1.0, 0.0, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (fd - g[i][d]).abs() < 1e-6,
                    "i={i} d={d} fd={fd} g={}",
                    g[i][d]
                );
            }
        }
    }

    #[test]
    fn trustworthiness_of_identity_is_one() {
        let data: Vec<f32> = (0..20)
            .flat_map(|i| [i as f32, (i * i % 7) as f32])
            .collect();
        let e: Vec<[f64; 2]> = data.chunks(2).map(|r| [r[0] as f64, r[1] as f64]).collect();
        assert!((trustworthiness(&data, 2, &e, 3).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(knn_preservation(&data, 2, &e, 3).unwrap(), 1.0);
    }

    #[test]
    fn duplicate_points_stay_finite() {
        // Half the rows identical, half identical to each other too: degenerate distances and
        // coincident quadtree points must not produce NaN.
        let mut data = vec![0.0f32; 30 * 4];
        data.extend(std::iter::repeat_n(1.0f32, 30 * 4));
        for method in [TsneMethod::Exact, TsneMethod::BarnesHut] {
            let cfg = TsneConfig {
                perplexity: 5.0,
                max_iter: 300,
                method,
                progress: false,
                ..TsneConfig::default()
            };
            let e = tsne(&data, 4, &cfg).unwrap();
            assert!(e
                .points
                .iter()
                .all(|p| p[0].is_finite() && p[1].is_finite()));
            assert!(e.kl_divergence.is_finite());
        }
    }

    #[test]
    fn bad_input_is_typed() {
        let cfg = TsneConfig {
            progress: false,
            ..TsneConfig::default()
        };
        assert!(matches!(
            tsne(&[0.0, 1.0, f32::NAN, 2.0, 3.0, 4.0], 2, &cfg),
            Err(EvalError::NonFinite { index: 2, .. })
        ));
        assert!(matches!(
            tsne(&[0.0; 6], 2, &cfg),
            Err(EvalError::InvalidParameter {
                name: "perplexity",
                ..
            })
        ));
        assert!(matches!(
            tsne(&[0.0; 7], 2, &cfg),
            Err(EvalError::InvalidParameter { name: "data", .. })
        ));
    }
}
