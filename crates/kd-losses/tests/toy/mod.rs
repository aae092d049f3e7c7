//! A toy cross-modal task: the teacher sees a clean latent, the student a noisy, mixed projection of
//! it buried in nuisance dimensions. Shared by the integration tests.

#![allow(dead_code, clippy::needless_range_loop)]

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use kd_losses::{frozen_var_builder, EmbeddingClassifier, PairedData};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

pub const LATENT: usize = 4;
pub const STUDENT_IN: usize = 16;
pub const EMB: usize = 16;

fn normals(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            z
        })
        .collect()
}

/// The frozen teacher: `e_t = A z` with orthonormal columns `A` (`EMB x LATENT`), and the head
/// `h(e) = 3 a_0 . e`, so `h(e_t) = 3 z_0`.
pub struct Teacher {
    pub proj: Tensor,
    pub head: Tensor,
}

impl Teacher {
    /// Builds the weights in a `VarMap` (as a trained model would be), then freezes them.
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let raw = normals(&mut rng, EMB * LATENT);
        // Gram-Schmidt on the columns.
        let mut cols: Vec<Vec<f64>> = (0..LATENT)
            .map(|j| (0..EMB).map(|i| raw[i * LATENT + j]).collect())
            .collect();
        for j in 0..LATENT {
            for k in 0..j {
                let d: f64 = (0..EMB).map(|i| cols[j][i] * cols[k][i]).sum();
                for i in 0..EMB {
                    cols[j][i] -= d * cols[k][i];
                }
            }
            let n = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt();
            cols[j].iter_mut().for_each(|v| *v /= n);
        }
        let a: Vec<f32> = (0..EMB)
            .flat_map(|i| cols.iter().map(move |c| c[i] as f32).collect::<Vec<_>>())
            .collect();
        let head: Vec<f32> = cols[0].iter().map(|v| (3.0 * v) as f32).collect();
        let map = VarMap::new();
        {
            let mut d = map.data().lock().unwrap();
            let dev = Device::Cpu;
            d.insert(
                "proj".into(),
                Var::from_tensor(&Tensor::from_vec(a, (EMB, LATENT), &dev).unwrap()).unwrap(),
            );
            d.insert(
                "head".into(),
                Var::from_tensor(&Tensor::from_vec(head, (EMB, 1), &dev).unwrap()).unwrap(),
            );
        }
        let vb = frozen_var_builder(&map, DType::F32, &Device::Cpu).unwrap();
        Self {
            proj: vb.get((EMB, LATENT), "proj").unwrap(),
            head: vb.get((EMB, 1), "head").unwrap(),
        }
    }
}

impl EmbeddingClassifier for Teacher {
    fn embedding(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        z.matmul(&self.proj.t()?)
    }
    fn logit(&self, e: &Tensor) -> candle_core::Result<Tensor> {
        e.matmul(&self.head)?.squeeze(1)
    }
}

/// The student: a two-layer ReLU MLP (hidden 32) and its own linear head.
pub struct Student {
    l1: Linear,
    l2: Linear,
    head: Linear,
}

impl Student {
    pub fn new(vb: VarBuilder) -> Self {
        Self {
            l1: candle_nn::linear(STUDENT_IN, 32, vb.pp("enc.l1")).unwrap(),
            l2: candle_nn::linear(32, EMB, vb.pp("enc.l2")).unwrap(),
            head: candle_nn::linear(EMB, 1, vb.pp("head")).unwrap(),
        }
    }
}

impl EmbeddingClassifier for Student {
    fn embedding(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.l2.forward(&self.l1.forward(x)?.relu()?)
    }
    fn logit(&self, e: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(e)?.squeeze(1)
    }
}

/// `n` pairs: latent `z ~ N(0, I)`, label `1[z_0 + 0.5 eps > 0]`, teacher input `z`, student input
/// `M [z; 2 n] + 0.1 eta` with 12 nuisance dimensions and a fixed random mixing `M`.
pub fn data(n: usize, seed: u64) -> PairedData {
    let mut mix_rng = StdRng::seed_from_u64(99);
    let mix = normals(&mut mix_rng, STUDENT_IN * STUDENT_IN);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut zs = Vec::with_capacity(n * LATENT);
    let mut xs = Vec::with_capacity(n * STUDENT_IN);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let z = normals(&mut rng, LATENT);
        let nuisance = normals(&mut rng, STUDENT_IN - LATENT);
        let eps: f64 = StandardNormal.sample(&mut rng);
        ys.push(if z[0] + 0.5 * eps > 0.0 { 1.0f32 } else { 0.0 });
        let src: Vec<f64> = z
            .iter()
            .copied()
            .chain(nuisance.iter().map(|v| 2.0 * v))
            .collect();
        for r in 0..STUDENT_IN {
            let noise: f64 = StandardNormal.sample(&mut rng);
            let v: f64 = (0..STUDENT_IN)
                .map(|c| mix[r * STUDENT_IN + c] * src[c])
                .sum::<f64>()
                / (STUDENT_IN as f64).sqrt();
            xs.push((v + 0.1 * noise) as f32);
        }
        zs.extend(z.iter().map(|v| *v as f32));
    }
    let dev = Device::Cpu;
    PairedData {
        student_inputs: Tensor::from_vec(xs, (n, STUDENT_IN), &dev).unwrap(),
        teacher_inputs: Tensor::from_vec(zs, (n, LATENT), &dev).unwrap(),
        labels: Tensor::from_vec(ys, n, &dev).unwrap(),
    }
}

/// Rank-based AUC (Mann-Whitney U / (m n)) with mid-ranks for ties.
pub fn auc(scores: &[f64], labels: &[f32]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let m = labels.iter().filter(|y| **y == 1.0).count() as f64;
    let n = labels.len() as f64 - m;
    let rs: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, y)| **y == 1.0)
        .map(|(r, _)| r)
        .sum();
    (rs - m * (m + 1.0) / 2.0) / (m * n)
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

/// Linear probe: ridge regression of the label on standardised embeddings of `train`, scored by AUC
/// on `test`.
pub fn probe_auc(train_e: &Tensor, train_y: &Tensor, test_e: &Tensor, test_y: &Tensor) -> f64 {
    let x = rows(train_e);
    let y = train_y.to_vec1::<f32>().unwrap();
    let d = x[0].len();
    let n = x.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-9)
        })
        .collect();
    let z = |r: &Vec<f64>| -> Vec<f64> { (0..d).map(|j| (r[j] - mean[j]) / sd[j]).collect() };
    let ybar = y.iter().map(|v| *v as f64).sum::<f64>() / n;
    // Normal equations (X'X + lambda I) w = X'(y - ybar), solved by Gaussian elimination.
    let mut a = vec![vec![0.0; d + 1]; d];
    for (r, yv) in x.iter().zip(&y) {
        let zr = z(r);
        for i in 0..d {
            for j in 0..d {
                a[i][j] += zr[i] * zr[j];
            }
            a[i][d] += zr[i] * (*yv as f64 - ybar);
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += 1.0;
    }
    for c in 0..d {
        let p = (c..d)
            .max_by(|i, j| a[*i][c].abs().total_cmp(&a[*j][c].abs()))
            .unwrap();
        a.swap(c, p);
        for r in 0..d {
            if r != c {
                let f = a[r][c] / a[c][c];
                for k in c..=d {
                    a[r][k] -= f * a[c][k];
                }
            }
        }
    }
    let w: Vec<f64> = (0..d).map(|i| a[i][d] / a[i][i]).collect();
    let scores: Vec<f64> = rows(test_e)
        .iter()
        .map(|r| z(r).iter().zip(&w).map(|(a, b)| a * b).sum())
        .collect();
    auc(&scores, &test_y.to_vec1::<f32>().unwrap())
}

#[test]
fn auc_matches_hand_values() {
    // Positives 0.8, 0.4 against negatives 0.4, 0.1: pairs > = 3, tie = 1 -> 3.5 / 4.
    assert_eq!(auc(&[0.8, 0.4, 0.4, 0.1], &[1.0, 1.0, 0.0, 0.0]), 0.875);
    assert_eq!(auc(&[0.1, 0.9], &[0.0, 1.0]), 1.0);
}
