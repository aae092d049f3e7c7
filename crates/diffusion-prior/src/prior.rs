//! [`DiffusionPrior`]: the network, its noise schedule and the embedding normalisations, with the
//! training loss, classifier-free-guided sampling, Analytic-DPM statistics and save/load.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::analytic_dpm::{AnalyticBounds, AnalyticDpm, AnalyticKind, GammaTable};
use crate::config::PriorConfig;
use crate::error::{config_err, Error, Result};
use crate::network::{CondDrop, PriorNetwork};
use crate::normalization::{EmbeddingNorm, NormKind};
use crate::prediction::Prediction;
use crate::sampler::Sampler;
use crate::schedule::{BetaSchedule, NoiseSchedule, ScheduleConfig};

/// Everything that defines a prior apart from its weights and data statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorOptions {
    /// The denoiser.
    pub network: PriorConfig,
    /// Training noise schedule.
    pub schedule: ScheduleConfig,
    /// What the network predicts.
    pub prediction: Prediction,
    /// Probability of replacing the condition (and, independently, the noised embedding) by its
    /// learned null token in training, for classifier-free guidance (0.1 in the published run).
    pub cond_drop_prob: f64,
}

impl PriorOptions {
    /// `network` with a `kind` schedule of `timesteps` steps, x0 prediction, no condition dropout.
    pub fn new(network: PriorConfig, kind: BetaSchedule, timesteps: usize) -> Self {
        Self {
            network,
            schedule: ScheduleConfig { kind, timesteps },
            prediction: Prediction::X0,
            cond_drop_prob: 0.0,
        }
    }

    /// The published configuration: [`PriorConfig::published`], cosine schedule with 64 steps, x0
    /// prediction, condition dropout 0.1.
    pub fn published() -> Self {
        Self {
            cond_drop_prob: 0.1,
            ..Self::new(PriorConfig::published(), BetaSchedule::Cosine, 64)
        }
    }
}

/// What is saved beside the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PriorFile {
    format: String,
    options: PriorOptions,
    target_norm: EmbeddingNorm,
    cond_norm: EmbeddingNorm,
    gamma: Option<GammaTable>,
}

const FORMAT: &str = "cmkd-diffusion-prior/1";
/// File names inside a prior directory.
pub const WEIGHTS_FILE: &str = cmkd_train::checkpoint::MODEL_WEIGHTS;
/// JSON configuration file name inside a prior directory.
pub const CONFIG_FILE: &str = cmkd_train::checkpoint::MODEL_CONFIG;
/// The configuration file of priors saved by earlier versions.
const LEGACY_CONFIG_FILE: &str = "prior.json";

/// Outputs of one training forward pass.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Mean squared error against the prediction target (in the normalised space).
    pub mse: Tensor,
    /// The predicted clean embedding, back in the caller's space (differentiable).
    pub pred: Tensor,
}

/// A conditional diffusion prior over embeddings. (Not `Clone`: copies would share variables; use
/// [`DiffusionPrior::deep_copy`].)
pub struct DiffusionPrior {
    options: PriorOptions,
    schedule: NoiseSchedule,
    target_norm: EmbeddingNorm,
    cond_norm: EmbeddingNorm,
    gamma: Option<GammaTable>,
    varmap: VarMap,
    network: PriorNetwork,
    dtype: DType,
    device: Device,
}

impl std::fmt::Debug for DiffusionPrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffusionPrior")
            .field("options", &self.options)
            .field("target_norm", &self.target_norm)
            .field("cond_norm", &self.cond_norm)
            .field("gamma", &self.gamma.is_some())
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish()
    }
}

/// Checks a `(n, dim)` embedding matrix: shape, non-empty, finite.
pub fn check_embeddings(what: &'static str, x: &Tensor, dim: usize) -> Result<usize> {
    let n = match x.dims() {
        [n, d] if *d == dim => *n,
        _ => {
            return Err(Error::Shape {
                what,
                got: x.dims().to_vec(),
                expected: format!("(n, {dim})"),
            })
        }
    };
    if n == 0 {
        return Err(Error::Empty { what });
    }
    let bad = x
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?
        .iter()
        .position(|row| row.iter().any(|v| !v.is_finite()));
    if let Some(row) = bad {
        return Err(Error::NonFiniteInput { what, row });
    }
    Ok(n)
}

impl DiffusionPrior {
    /// A new prior with weights initialised from `seed`, normalisations fitted to the training
    /// conditions `cond` `(n, cond_dim)` and targets `target` `(n, embed_dim)`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: PriorOptions,
        target_kind: NormKind,
        cond_kind: NormKind,
        cond: &Tensor,
        target: &Tensor,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let n = check_embeddings("cond", cond, options.network.cond_dim)?;
        let m = check_embeddings("target", target, options.network.embed_dim)?;
        if n != m {
            return Err(Error::Shape {
                what: "target",
                got: target.dims().to_vec(),
                expected: format!("{n} rows, as many as the conditions"),
            });
        }
        let target_norm = EmbeddingNorm::fit(target_kind, target)?;
        let cond_norm = EmbeddingNorm::fit(cond_kind, cond)?;
        Self::from_parts(options, target_norm, cond_norm, seed, dtype, device)
    }

    /// A prior from explicit normalisations, weights initialised from `seed`.
    pub fn from_parts(
        options: PriorOptions,
        target_norm: EmbeddingNorm,
        cond_norm: EmbeddingNorm,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&options.cond_drop_prob) {
            return Err(config_err(
                "cond_drop_prob",
                format!("must be in [0, 1), got {}", options.cond_drop_prob),
            ));
        }
        let schedule = NoiseSchedule::from_config(options.schedule)?;
        let varmap = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&varmap, seed, dtype, device);
        let network = PriorNetwork::new(&options.network, schedule.num_timesteps(), vb)?;
        Ok(Self {
            options,
            schedule,
            target_norm,
            cond_norm,
            gamma: None,
            varmap,
            network,
            dtype,
            device: device.clone(),
        })
    }

    /// An independent copy (new variables with the same values).
    pub fn deep_copy(&self) -> Result<Self> {
        let mut c = Self::from_parts(
            self.options.clone(),
            self.target_norm.clone(),
            self.cond_norm.clone(),
            0,
            self.dtype,
            &self.device,
        )?;
        let src = self.vars();
        for ((n1, v1), (n2, v2)) in src.iter().zip(c.vars()) {
            debug_assert_eq!(n1, &n2);
            v2.set(&v1.as_tensor().copy()?)?;
        }
        c.gamma = self.gamma.clone();
        Ok(c)
    }

    /// The options.
    pub fn options(&self) -> &PriorOptions {
        &self.options
    }
    /// The training noise schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }
    /// What the network predicts.
    pub fn prediction(&self) -> Prediction {
        self.options.prediction
    }
    /// The network.
    pub fn network(&self) -> &PriorNetwork {
        &self.network
    }
    /// The variables (trainable parameters), sorted by name.
    pub fn vars(&self) -> Vec<(String, candle_core::Var)> {
        cmkd_train::sorted_vars(&self.varmap)
    }
    /// The variable map.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }
    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        cmkd_train::count_params(&self.vars())
    }
    /// Normalisation of the target embeddings.
    pub fn target_norm(&self) -> &EmbeddingNorm {
        &self.target_norm
    }
    /// Normalisation of the conditions.
    pub fn cond_norm(&self) -> &EmbeddingNorm {
        &self.cond_norm
    }
    /// Analytic-DPM statistics, if estimated.
    pub fn gamma(&self) -> Option<&GammaTable> {
        self.gamma.as_ref()
    }
    /// Replaces the Analytic-DPM statistics.
    pub fn set_gamma(&mut self, gamma: Option<GammaTable>) {
        self.gamma = gamma;
    }
    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// Dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn prepare(
        &self,
        what: &'static str,
        x: &Tensor,
        dim: usize,
        norm: &EmbeddingNorm,
    ) -> Result<Tensor> {
        if x.rank() != 2 || x.dim(1)? != dim {
            return Err(Error::Shape {
                what,
                got: x.dims().to_vec(),
                expected: format!("(n, {dim})"),
            });
        }
        norm.normalize(&x.to_device(&self.device)?.to_dtype(self.dtype)?)
    }

    /// The training forward pass on raw (un-normalised) conditions and targets: draws timesteps,
    /// noise and guidance masks from `rng`, with dropout when `train`. Returns the MSE against the
    /// prediction target and the predicted clean embedding in the caller's space.
    pub fn loss(
        &self,
        cond: &Tensor,
        target: &Tensor,
        rng: &mut StdRng,
        train: bool,
    ) -> Result<LossParts> {
        let c = self.prepare("cond", cond, self.options.network.cond_dim, &self.cond_norm)?;
        let z0 = self.prepare(
            "target",
            target,
            self.options.network.embed_dim,
            &self.target_norm,
        )?;
        let b = z0.dim(0)?;
        if c.dim(0)? != b {
            return Err(Error::Shape {
                what: "cond",
                got: cond.dims().to_vec(),
                expected: format!("{b} rows, as many as the targets"),
            });
        }
        let t =
            cmkd_train::rng::randint(rng, self.schedule.num_timesteps() as u32, b, &self.device)?;
        let noise = cmkd_train::rng::randn(rng, 0.0, 1.0, z0.shape(), self.dtype, &self.device)?;
        let (sa, ss) = self.schedule.gather_sqrt_coefs(&t, self.dtype)?;
        let x_t = (z0.broadcast_mul(&sa)? + noise.broadcast_mul(&ss)?)?;
        let p_keep = 1.0 - self.options.cond_drop_prob;
        let keep_c = cmkd_train::rng::bernoulli(rng, p_keep, b, DType::F32, &self.device)?;
        let keep_i = cmkd_train::rng::bernoulli(rng, p_keep, b, DType::F32, &self.device)?;
        let drop = if self.options.cond_drop_prob > 0.0 {
            CondDrop::Masks {
                cond: &keep_c,
                image: &keep_i,
            }
        } else {
            CondDrop::Keep
        };
        let out = self
            .network
            .forward(&x_t, &t, &c, drop, if train { Some(rng) } else { None })?;
        let p = self.options.prediction;
        let tgt = p.target(&z0, &noise, &sa, &ss)?;
        let mse = (out.clone() - tgt)?.sqr()?.mean_all()?;
        let x0 = p.x0_from_output(&out, &x_t, &sa, &ss)?;
        Ok(LossParts {
            mse,
            pred: self.target_norm.denormalize(&x0)?,
        })
    }

    /// Samples one target embedding per row of `cond` (raw, `(b, cond_dim)`), returned in the
    /// caller's space. `guidance_scale` 1 is plain conditional sampling; above 1 is classifier-free
    /// guidance (`null + (cond - null) * scale` on the network output).
    pub fn sample(
        &self,
        cond: &Tensor,
        sampler: &mut dyn Sampler,
        guidance_scale: f64,
        rng: &mut StdRng,
    ) -> Result<Tensor> {
        let c = self.prepare("cond", cond, self.options.network.cond_dim, &self.cond_norm)?;
        let b = c.dim(0)?;
        let e = self.options.network.embed_dim;
        let mut x = cmkd_train::rng::randn(rng, 0.0, 1.0, (b, e), self.dtype, &self.device)?;
        let cache = self.network.condition_cache(&c, false)?;
        let guided = guidance_scale != 1.0;
        let null_cache = if guided {
            Some(self.network.condition_cache(&c, true)?)
        } else {
            None
        };
        let steps = sampler.timesteps().to_vec();
        let bar = cmkd_train::progress::bar(steps.len() as u64, sampler.name());
        for (i, t) in steps.iter().enumerate() {
            let tt = Tensor::from_vec(vec![*t as u32; b], b, &self.device)?;
            let mut out = self.network.forward_cached(&cache, &x, &tt, &c)?;
            if let Some(nc) = &null_cache {
                let un = self.network.forward_cached(nc, &x, &tt, &c)?;
                out = (&un + ((out - &un)? * guidance_scale)?)?;
            }
            x = sampler.step(&out, i, &x, rng)?.detach();
            bar.inc(1);
        }
        bar.finish_and_clear();
        self.target_norm.denormalize(&x)
    }

    /// Estimates Analytic-DPM's `Gamma_t = E ||eps_hat||^2 / d` at `timesteps` by Monte Carlo over
    /// the pairs `(cond, target)` (raw; one noise draw per pair and timestep), with the current
    /// weights (use the EMA weights that will sample). Stores and returns the table.
    pub fn estimate_gamma(
        &mut self,
        cond: &Tensor,
        target: &Tensor,
        timesteps: &[usize],
        batch_size: usize,
        seed: u64,
    ) -> Result<GammaTable> {
        let n = check_embeddings("cond", cond, self.options.network.cond_dim)?;
        if check_embeddings("target", target, self.options.network.embed_dim)? != n {
            return Err(Error::Shape {
                what: "target",
                got: target.dims().to_vec(),
                expected: format!("{n} rows, as many as the conditions"),
            });
        }
        let mut ts: Vec<usize> = timesteps.to_vec();
        ts.sort_unstable();
        ts.dedup();
        if let Some(t) = ts.iter().find(|t| **t >= self.schedule.num_timesteps()) {
            return Err(config_err(
                "timesteps",
                format!("{t} is not a training timestep"),
            ));
        }
        if batch_size == 0 {
            return Err(config_err("batch_size", "must be positive"));
        }
        let c_all = self.prepare("cond", cond, self.options.network.cond_dim, &self.cond_norm)?;
        let z_all = self.prepare(
            "target",
            target,
            self.options.network.embed_dim,
            &self.target_norm,
        )?;
        let e = self.options.network.embed_dim as f64;
        let mut sums = vec![0f64; ts.len()];
        let mut rng = cmkd_train::rng::stream(seed, "analytic-dpm/gamma");
        let bar = cmkd_train::progress::bar(n.div_ceil(batch_size) as u64, "gamma");
        let mut start = 0;
        while start < n {
            let len = batch_size.min(n - start);
            let c = c_all.narrow(0, start, len)?;
            let z0 = z_all.narrow(0, start, len)?;
            let cache = self.network.condition_cache(&c, false)?;
            for (k, t) in ts.iter().enumerate() {
                let ab = self.schedule.alpha_bar(*t as i64);
                let noise = cmkd_train::rng::randn(
                    &mut rng,
                    0.0,
                    1.0,
                    z0.shape(),
                    self.dtype,
                    &self.device,
                )?;
                let x_t = (z0.affine(ab.sqrt(), 0.0)? + noise.affine((1.0 - ab).sqrt(), 0.0)?)?;
                let tt = Tensor::from_vec(vec![*t as u32; len], len, &self.device)?;
                let out = self.network.forward_cached(&cache, &x_t, &tt, &c)?;
                let (_, eps) = self.options.prediction.to_x0_eps(&out, &x_t, ab)?;
                sums[k] += eps
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
            }
            start += len;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let table = GammaTable {
            timesteps: ts,
            values: sums.into_iter().map(|s| s / (n as f64 * e)).collect(),
            samples: n,
        };
        self.gamma = Some(table.clone());
        Ok(table)
    }

    /// An Analytic-DPM sampler over `num_steps` evenly spaced timesteps using the stored statistics.
    pub fn analytic_sampler(
        &self,
        kind: AnalyticKind,
        bounds: AnalyticBounds,
        num_steps: usize,
    ) -> Result<AnalyticDpm> {
        let gamma = self.gamma.clone().ok_or_else(|| {
            Error::Sampler("no Analytic-DPM statistics; call estimate_gamma first".into())
        })?;
        AnalyticDpm::new(
            self.schedule.clone(),
            self.options.prediction,
            gamma,
            kind,
            bounds,
            num_steps,
        )
    }

    /// Writes `model.safetensors` and `prior.json` into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        cmkd_train::checkpoint::save_varmap(&dir.join(WEIGHTS_FILE), &self.varmap)?;
        let file = PriorFile {
            format: FORMAT.into(),
            options: self.options.clone(),
            target_norm: self.target_norm.clone(),
            cond_norm: self.cond_norm.clone(),
            gamma: self.gamma.clone(),
        };
        cmkd_train::checkpoint::save_json(&dir.join(CONFIG_FILE), &file)?;
        Ok(())
    }

    /// Loads a prior written by [`DiffusionPrior::save`]; every tensor must be present with its shape.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = cmkd_train::checkpoint::model_file(dir, CONFIG_FILE, &[LEGACY_CONFIG_FILE]);
        let file: PriorFile = cmkd_train::checkpoint::load_json(&config)?;
        if file.format != FORMAT {
            return Err(Error::Checkpoint {
                path: config,
                reason: format!("format `{}`, expected `{FORMAT}`", file.format),
            });
        }
        let mut p = Self::from_parts(
            file.options,
            file.target_norm,
            file.cond_norm,
            0,
            dtype,
            device,
        )?;
        let report = cmkd_train::checkpoint::load_varmap(&dir.join(WEIGHTS_FILE), &p.varmap, true)?;
        if let Some(u) = report.unexpected.first() {
            return Err(Error::Checkpoint {
                path: dir.join(WEIGHTS_FILE),
                reason: format!("unexpected tensor `{u}` (a different architecture?)"),
            });
        }
        p.gamma = file.gamma;
        Ok(p)
    }

    /// Loads weights named as DALLE2-pytorch's `DiffusionPriorNetwork` state dict (as exported by
    /// `tools/prior/export_fixture.py`) into this prior's network; non-trainable buffers in the file
    /// (rotary frequencies) are ignored, every trainable tensor must be present.
    pub fn load_dalle2_weights(&self, path: &Path) -> Result<()> {
        let report = cmkd_train::checkpoint::load_varmap(path, &self.varmap, true)?;
        if let Some(u) = report
            .unexpected
            .iter()
            .find(|u| !u.ends_with("rotary_emb.freqs"))
        {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("unexpected tensor `{u}`"),
            });
        }
        Ok(())
    }
}
