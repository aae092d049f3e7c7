//! The denoiser: a causal transformer over `[prefix tokens, condition, time, noised embedding,
//! learned query]` whose output at the query token is the prediction.
//!
//! Variable names follow DALLE2-pytorch's `DiffusionPriorNetwork` state dict, so its weights load
//! directly (see `tools/prior/export_fixture.py`).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::dense::Dense;
use cmkd_train::LayerNorm;
use rand::rngs::StdRng;

use crate::attention::{CachedKv, MultiHeadAttention, MultiQueryAttention};
use crate::config::{PriorConfig, Style, TimeEmbedding};
use crate::error::{Error, Result};
use crate::fused;
use crate::layers::{affine_norm, apply, gain_norm, linear, randn_param, GainNorm};
use crate::position::{RelPosBias, Rotary};

/// Which conditioning the network sees (classifier-free guidance).
#[derive(Debug, Clone, Copy)]
pub enum CondDrop<'a> {
    /// Condition and noised embedding as given.
    Keep,
    /// Both replaced by their learned null tokens (the unconditional branch of guidance).
    All,
    /// Per-row keep masks (`(b,)`, 1 = keep) for the condition and the noised embedding, drawn
    /// independently during training as DALLE2-pytorch does.
    Masks {
        /// Keep mask of the condition token.
        cond: &'a Tensor,
        /// Keep mask of the noised-embedding token.
        image: &'a Tensor,
    },
}

#[derive(Debug, Clone)]
struct SwiGlu {
    norm: GainNorm,
    proj_in: Dense,
    post_norm: Option<GainNorm>,
    proj_out: Dense,
    dropout: f64,
}

impl SwiGlu {
    fn new(
        dim: usize,
        mult: usize,
        normformer: bool,
        dropout: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = mult * dim;
        Ok(Self {
            norm: gain_norm(dim, false, vb.pp("0"))?,
            proj_in: linear(dim, 2 * inner, false, vb.pp("1"))?,
            post_norm: if normformer {
                Some(gain_norm(inner, false, vb.pp("3"))?)
            } else {
                None
            },
            proj_out: linear(inner, dim, false, vb.pp("5"))?,
            dropout,
        })
    }

    fn forward(&self, x: &Tensor, rng: Option<&mut StdRng>) -> Result<Tensor> {
        let h = apply(&self.proj_in, &apply(&self.norm, x)?)?;
        let mut h = if fused::fusable(&h) {
            fused::swiglu(&h)?
        } else {
            let inner = h.dim(D::Minus1)? / 2;
            let a = h.narrow(D::Minus1, 0, inner)?;
            let gate = h.narrow(D::Minus1, inner, inner)?;
            (a * gate.silu()?)?
        };
        if let Some(n) = &self.post_norm {
            h = apply(n, &h)?;
        }
        if let Some(rng) = rng {
            h = cmkd_train::dropout(&h, self.dropout, rng, true)?;
        }
        apply(&self.proj_out, &h)
    }
}

#[derive(Debug, Clone)]
struct GeluMlp {
    norm: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    dropout: f64,
}

impl GeluMlp {
    fn forward(&self, x: &Tensor, rng: Option<&mut StdRng>) -> Result<Tensor> {
        let mut h = apply(&self.fc1, &apply(&self.norm, x)?)?.gelu_erf()?;
        if let Some(rng) = rng {
            h = cmkd_train::dropout(&h, self.dropout, rng, true)?;
        }
        apply(&self.fc2, &h)
    }
}

#[derive(Debug, Clone)]
enum Block {
    Dalle2 {
        attn: MultiQueryAttention,
        ff: SwiGlu,
    },
    PreNorm {
        attn: MultiHeadAttention,
        mlp: GeluMlp,
    },
}

#[derive(Debug, Clone)]
enum TimeEmbed {
    Table(Tensor),
    Sinusoidal {
        freqs: Tensor,
        l1: Dense,
        l2: Dense,
        l3: Dense,
    },
}

impl TimeEmbed {
    fn forward(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        match self {
            TimeEmbed::Table(w) => Ok(w.index_select(t, 0)?),
            TimeEmbed::Sinusoidal { freqs, l1, l2, l3 } => {
                let tf = t.to_dtype(DType::F32)?.unsqueeze(1)?;
                let a = tf.broadcast_mul(&freqs.unsqueeze(0)?)?;
                let e = Tensor::cat(&[&a.sin()?, &a.cos()?], 1)?.to_dtype(dtype)?;
                let h = apply(l1, &e)?.silu()?;
                let h = apply(l2, &h)?.silu()?;
                apply(l3, &h)
            }
        }
    }
}

/// The norm before the output projection (DALLE2's stable gain-only norm, or an affine one).
#[derive(Debug, Clone)]
enum FinalNorm {
    Gain(GainNorm),
    Affine(LayerNorm),
}

impl candle_core::Module for FinalNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            FinalNorm::Gain(n) => n.forward(x),
            FinalNorm::Affine(n) => n.forward(x),
        }
    }
}

/// Keys and values of the tokens that stay fixed over a sampling run (prefix and condition).
#[derive(Debug, Clone)]
pub struct ConditionCache {
    layers: Vec<CachedKv>,
    drop_image: bool,
    batch: usize,
}

/// The prior's denoising network.
#[derive(Debug, Clone)]
pub struct PriorNetwork {
    config: PriorConfig,
    cond_in: Option<Dense>,
    x_in: Option<Dense>,
    time: TimeEmbed,
    learned_query: Tensor,
    null_text_encodings: Option<Tensor>,
    null_text_embeds: Tensor,
    null_image_embed: Tensor,
    positions: Option<Tensor>,
    rel_pos: Option<RelPosBias>,
    rotary: Option<Rotary>,
    blocks: Vec<Block>,
    final_norm: FinalNorm,
    project_out: Dense,
}

const MASKED: f64 = -1e9;

impl PriorNetwork {
    /// Builds the network under `vb` (its dtype and device are the model's). `num_timesteps` is the
    /// diffusion's training length (checked against a learned time table).
    pub fn new(config: &PriorConfig, num_timesteps: usize, vb: VarBuilder) -> Result<Self> {
        config.validate(num_timesteps)?;
        let c = config;
        let d = c.dim;
        let n_tok = c.num_tokens();
        let cond_in = if c.cond_dim != d {
            Some(linear(c.cond_dim, d, true, vb.pp("cond_in"))?)
        } else {
            None
        };
        let x_in = if c.embed_dim != d {
            Some(linear(c.embed_dim, d, true, vb.pp("x_in"))?)
        } else {
            None
        };
        let time = match c.time_embedding {
            TimeEmbedding::Learned { rows } => {
                TimeEmbed::Table(randn_param(&[rows, d], "to_time_embeds.0.weight", &vb)?)
            }
            TimeEmbedding::Sinusoidal => {
                let half = d / 2;
                let f: Vec<f32> = (0..half)
                    .map(|i| (-(i as f64) * (10000f64).ln() / (half as f64 - 1.0)).exp() as f32)
                    .collect();
                let mlp = vb.pp("to_time_embeds.0.1.net");
                TimeEmbed::Sinusoidal {
                    freqs: Tensor::from_vec(f, half, vb.device())?,
                    l1: linear(d, 2 * d, true, mlp.pp("0.0"))?,
                    l2: linear(2 * d, 2 * d, true, mlp.pp("1.0"))?,
                    l3: linear(2 * d, d, true, mlp.pp("2"))?,
                }
            }
        };
        let tr = vb.pp("causal_transformer");
        let mut blocks = Vec::with_capacity(c.depth);
        let (rel_pos, rotary, positions, final_norm, project_out);
        match c.style {
            Style::Dalle2 {
                cosine_sim_scale,
                rotary: use_rotary,
                normformer,
            } => {
                rel_pos = Some(RelPosBias::new(c.heads, tr.pp("rel_pos_bias"))?);
                rotary = if use_rotary {
                    Some(Rotary::new(
                        c.dim_head.min(32),
                        n_tok,
                        vb.dtype(),
                        vb.device(),
                    )?)
                } else {
                    None
                };
                positions = None;
                for i in 0..c.depth {
                    let l = tr.pp(format!("layers.{i}"));
                    blocks.push(Block::Dalle2 {
                        attn: MultiQueryAttention::new(
                            d,
                            c.heads,
                            c.dim_head,
                            cosine_sim_scale,
                            c.attn_dropout,
                            l.pp("0"),
                        )?,
                        ff: SwiGlu::new(d, c.ff_mult, normformer, c.ff_dropout, l.pp("1"))?,
                    });
                }
                final_norm = FinalNorm::Gain(gain_norm(d, true, tr.pp("norm"))?);
                project_out = linear(d, c.embed_dim, false, tr.pp("project_out"))?;
            }
            Style::PreNorm => {
                rel_pos = None;
                rotary = None;
                positions = Some(vb.get_with_hints(
                    (n_tok, d),
                    "positional_embedding",
                    candle_nn::Init::Randn {
                        mean: 0.0,
                        stdev: 0.01,
                    },
                )?);
                for i in 0..c.depth {
                    let l = tr.pp(format!("layers.{i}"));
                    let m = l.pp("mlp");
                    blocks.push(Block::PreNorm {
                        attn: MultiHeadAttention::new(
                            d,
                            c.heads,
                            c.dim_head,
                            c.attn_dropout,
                            l.pp("attn"),
                        )?,
                        mlp: GeluMlp {
                            norm: affine_norm(d, m.pp("norm"))?,
                            fc1: linear(d, c.ff_mult * d, true, m.pp("fc1"))?,
                            fc2: linear(c.ff_mult * d, d, true, m.pp("fc2"))?,
                            dropout: c.ff_dropout,
                        },
                    });
                }
                final_norm = FinalNorm::Affine(affine_norm(d, tr.pp("norm"))?);
                project_out = linear(d, c.embed_dim, true, tr.pp("project_out"))?;
            }
        }
        let null_text_encodings = if c.prefix_tokens > 0 {
            Some(randn_param(
                &[1, c.prefix_tokens, d],
                "null_text_encodings",
                &vb,
            )?)
        } else {
            None
        };
        Ok(Self {
            config: c.clone(),
            cond_in,
            x_in,
            time,
            learned_query: randn_param(&[d], "learned_query", &vb)?,
            null_text_encodings,
            null_text_embeds: randn_param(&[1, 1, d], "null_text_embeds", &vb)?,
            null_image_embed: randn_param(&[1, d], "null_image_embed", &vb)?,
            positions,
            rel_pos,
            rotary,
            blocks,
            final_norm,
            project_out,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &PriorConfig {
        &self.config
    }

    fn check_inputs(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> Result<usize> {
        let shape_err = |what, x: &Tensor, expected: String| Error::Shape {
            what,
            got: x.dims().to_vec(),
            expected,
        };
        let b = match x_t.dims() {
            [b, e] if *e == self.config.embed_dim => *b,
            _ => {
                return Err(shape_err(
                    "x_t",
                    x_t,
                    format!("(batch, {})", self.config.embed_dim),
                ))
            }
        };
        if t.dims() != [b] {
            return Err(shape_err("timesteps", t, format!("({b},)")));
        }
        if let Some(c) = cond {
            if c.dims() != [b, self.config.cond_dim] {
                return Err(shape_err(
                    "cond",
                    c,
                    format!("({b}, {})", self.config.cond_dim),
                ));
            }
        }
        Ok(b)
    }

    /// Condition token `(b, 1, d)` after the guidance mask.
    fn cond_token(&self, cond: &Tensor, drop: CondDrop) -> Result<Tensor> {
        let b = cond.dim(0)?;
        let d = self.config.dim;
        let c = match &self.cond_in {
            Some(l) => apply(l, cond)?,
            None => cond.clone(),
        }
        .unsqueeze(1)?;
        let null = self.null_text_embeds.broadcast_as((b, 1, d))?;
        Ok(match drop {
            CondDrop::Keep => c,
            CondDrop::All => null.contiguous()?,
            CondDrop::Masks { cond: m, .. } => mix(&c, &null, m)?,
        })
    }

    /// Time, noised-embedding and query tokens `(b, 3, d)`.
    fn step_tokens(&self, x_t: &Tensor, t: &Tensor, drop: CondDrop) -> Result<Tensor> {
        let b = x_t.dim(0)?;
        let d = self.config.dim;
        let time = self.time.forward(t, x_t.dtype())?.unsqueeze(1)?;
        let x = match &self.x_in {
            Some(l) => apply(l, x_t)?,
            None => x_t.clone(),
        }
        .unsqueeze(1)?;
        let null = self
            .null_image_embed
            .unsqueeze(0)?
            .broadcast_as((b, 1, d))?;
        let x = match drop {
            CondDrop::Keep => x,
            CondDrop::All => null.contiguous()?,
            CondDrop::Masks { image, .. } => mix(&x, &null, image)?,
        };
        let q = self
            .learned_query
            .reshape((1, 1, d))?
            .broadcast_as((b, 1, d))?;
        Ok(Tensor::cat(&[&time, &x, &q.contiguous()?], 1)?)
    }

    /// Relative-position bias plus causal mask for queries at `offset..offset+n` over the null key
    /// and keys `0..offset+n`: `(H, n, 1 + offset + n)`.
    fn dalle2_bias(
        &self,
        offset: usize,
        n: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        let rel = self
            .rel_pos
            .as_ref()
            .expect("DALLE2 style has a relative position bias");
        let total = offset + n;
        let bias = rel.forward(total, total + 1)?.narrow(1, offset, n)?;
        let mask: Vec<f32> = (offset..total)
            .flat_map(|q| (0..=total).map(move |j| if j <= q + 1 { 0.0 } else { MASKED as f32 }))
            .collect();
        let mask = Tensor::from_vec(mask, (n, total + 1), device)?.to_dtype(dtype)?;
        Ok(bias.to_dtype(dtype)?.broadcast_add(&mask)?)
    }

    /// Runs the DALLE2 blocks over `tokens` at `offset`, attending to `past`; returns the hidden
    /// states and every layer's keys/values.
    fn run_dalle2(
        &self,
        tokens: &Tensor,
        offset: usize,
        past: Option<&[CachedKv]>,
        mut rng: Option<&mut StdRng>,
    ) -> Result<(Tensor, Vec<CachedKv>)> {
        let n = tokens.dim(1)?;
        let bias = self.dalle2_bias(offset, n, tokens.device(), tokens.dtype())?;
        let mut x = tokens.clone();
        let mut caches = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let Block::Dalle2 { attn, ff } = block else {
                unreachable!("style is uniform")
            };
            let p = past.map(|p| &p[i]);
            let (a, kv) = attn.forward(
                &x,
                &bias,
                self.rotary.as_ref(),
                p,
                offset,
                rng.as_deref_mut(),
            )?;
            x = (a + &x)?;
            x = (ff.forward(&x, rng.as_deref_mut())? + &x)?;
            caches.push(kv);
        }
        Ok((x, caches))
    }

    fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let n = hidden.dim(1)?;
        let last = hidden.narrow(1, n - 1, 1)?.squeeze(1)?;
        apply(&self.project_out, &apply(&self.final_norm, &last)?)
    }

    /// Keys/values of the prefix tokens, computed at batch 1: they do not depend on the input. With
    /// `rng` (training with dropout), one dropout mask of the prefix's own layers serves every row.
    fn prefix_cache(&self, rng: Option<&mut StdRng>) -> Result<Option<Vec<CachedKv>>> {
        match &self.null_text_encodings {
            None => Ok(None),
            Some(p) => Ok(Some(self.run_dalle2(p, 0, None, rng)?.1)),
        }
    }

    /// Predicts from noised embeddings `x_t` `(b, embed_dim)` at timesteps `t` (`u32`, `(b,)`)
    /// given conditions `cond` `(b, cond_dim)`. With `rng`, dropout is active (training).
    ///
    /// For the DALLE2 style the prefix tokens, which do not depend on the input, are run once
    /// (batch 1) and their keys/values reused by every row, in training as in sampling: the same
    /// function, loss and gradients as running all `prefix + 4` tokens for every row (tested), at
    /// the cost of four tokens per row. With dropout active, the prefix's own layers then draw one
    /// dropout mask for the batch instead of one per row (DALLE2-pytorch draws one per row): each
    /// row's mask has the same distribution, so the expected loss, and the expected gradient, are
    /// the same; the attention of the row's own tokens over the prefix keeps per-row masks.
    pub fn forward(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        cond: &Tensor,
        drop: CondDrop,
        mut rng: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        let b = self.check_inputs(x_t, t, Some(cond))?;
        let cond_tok = self.cond_token(cond, drop)?;
        let step = self.step_tokens(x_t, t, drop)?;
        match self.config.style {
            Style::Dalle2 { .. } => {
                let past = self.prefix_cache(rng.as_deref_mut())?;
                let tokens = Tensor::cat(&[&cond_tok, &step], 1)?;
                let (h, _) =
                    self.run_dalle2(&tokens, self.config.prefix_tokens, past.as_deref(), rng)?;
                self.head(&h)
            }
            Style::PreNorm => {
                let mut parts = Vec::new();
                if let Some(p) = &self.null_text_encodings {
                    let (_, n, d) = p.dims3()?;
                    parts.push(p.broadcast_as((b, n, d))?.contiguous()?);
                }
                parts.push(cond_tok);
                parts.push(step);
                let mut x = Tensor::cat(&parts, 1)?;
                let pos = self
                    .positions
                    .as_ref()
                    .expect("pre-norm style has positions");
                x = x.broadcast_add(&pos.unsqueeze(0)?)?;
                let n = x.dim(1)?;
                let mask: Vec<f32> = (0..n)
                    .flat_map(|i| (0..n).map(move |j| if j <= i { 0.0 } else { MASKED as f32 }))
                    .collect();
                let mask = Tensor::from_vec(mask, (n, n), x.device())?.to_dtype(x.dtype())?;
                for block in &self.blocks {
                    let Block::PreNorm { attn, mlp } = block else {
                        unreachable!("style is uniform")
                    };
                    x = (attn.forward(&x, &mask, rng.as_deref_mut())? + &x)?;
                    x = (mlp.forward(&x, rng.as_deref_mut())? + &x)?;
                }
                self.head(&x)
            }
        }
    }

    /// Precomputes what stays fixed while sampling for `cond` (`drop_all`: the unconditional branch).
    /// Only the DALLE2 style caches; for the plain style this records the inputs.
    pub fn condition_cache(&self, cond: &Tensor, drop_all: bool) -> Result<ConditionCache> {
        let b = cond.dim(0)?;
        if cond.dims() != [b, self.config.cond_dim] {
            return Err(Error::Shape {
                what: "cond",
                got: cond.dims().to_vec(),
                expected: format!("(batch, {})", self.config.cond_dim),
            });
        }
        let drop = if drop_all {
            CondDrop::All
        } else {
            CondDrop::Keep
        };
        let layers = match self.config.style {
            Style::Dalle2 { .. } => {
                let past = self.prefix_cache(None)?;
                let cond_tok = self.cond_token(cond, drop)?;
                self.run_dalle2(&cond_tok, self.config.prefix_tokens, past.as_deref(), None)?
                    .1
            }
            Style::PreNorm => Vec::new(),
        };
        let layers = layers
            .into_iter()
            .map(|kv| CachedKv {
                k: kv.k.detach(),
                v: kv.v.detach(),
            })
            .collect();
        Ok(ConditionCache {
            layers,
            drop_image: drop_all,
            batch: b,
        })
    }

    /// Evaluation-mode prediction (detached from autograd) reusing a [`ConditionCache`] (DALLE2 style), or a full forward
    /// with `cond` (plain style, which needs `cond`).
    pub fn forward_cached(
        &self,
        cache: &ConditionCache,
        x_t: &Tensor,
        t: &Tensor,
        cond: &Tensor,
    ) -> Result<Tensor> {
        let b = self.check_inputs(x_t, t, None)?;
        if b != cache.batch {
            return Err(Error::Shape {
                what: "x_t",
                got: x_t.dims().to_vec(),
                expected: format!("batch {} as the condition cache", cache.batch),
            });
        }
        let drop = if cache.drop_image {
            CondDrop::All
        } else {
            CondDrop::Keep
        };
        match self.config.style {
            Style::Dalle2 { .. } => {
                let step = self.step_tokens(x_t, t, drop)?;
                let (h, _) = self.run_dalle2(
                    &step,
                    self.config.prefix_tokens + 1,
                    Some(&cache.layers),
                    None,
                )?;
                // Evaluation only: cut the autograd graph, or a sampling chain keeps every step alive.
                Ok(self.head(&h)?.detach())
            }
            Style::PreNorm => Ok(self.forward(x_t, t, cond, drop, None)?.detach()),
        }
    }
}

/// `keep * a + (1 - keep) * b` with a per-row mask `(b,)`.
fn mix(a: &Tensor, null: &Tensor, keep: &Tensor) -> Result<Tensor> {
    let k = keep.to_dtype(a.dtype())?.reshape((a.dim(0)?, 1, 1))?;
    let one_minus = k.affine(-1.0, 1.0)?;
    Ok((a.broadcast_mul(&k)? + null.broadcast_mul(&one_minus)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DALLE2 blocks over `[prefix, cond, step tokens]` as one segment of `b` rows.
    fn forward_joined(
        net: &PriorNetwork,
        b: usize,
        cond_tok: &Tensor,
        step: &Tensor,
        rng: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        let tokens = match &net.null_text_encodings {
            Some(p) => {
                let (_, n, d) = p.dims3()?;
                Tensor::cat(&[&p.broadcast_as((b, n, d))?, cond_tok, step], 1)?
            }
            None => Tensor::cat(&[cond_tok, step], 1)?,
        };
        let (h, _) = net.run_dalle2(&tokens, 0, None, rng)?;
        net.head(&h)
    }

    /// A two-layer DALLE2-style network with `prefix` null tokens (embedding 4, condition 6).
    fn tiny_net(prefix: usize, dropout: f64, seed: u64) -> (candle_nn::VarMap, PriorNetwork) {
        let config = PriorConfig {
            prefix_tokens: prefix,
            attn_dropout: dropout,
            ff_dropout: dropout,
            time_embedding: TimeEmbedding::Learned { rows: 16 },
            embed_dim: 4,
            cond_dim: 6,
            dim: 16,
            depth: 2,
            heads: 2,
            dim_head: 8,
            ..PriorConfig::default()
        };
        let map = candle_nn::VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, DType::F32, &Device::Cpu);
        let net = PriorNetwork::new(&config, 16, vb).unwrap();
        (map, net)
    }

    /// The training loss through the cached prefix and every weight's gradient equal those of
    /// running the whole `[prefix, cond, step]` sequence for every row.
    #[test]
    fn cached_prefix_gives_the_joined_loss_and_gradients() {
        let dev = Device::Cpu;
        let (map, net) = tiny_net(5, 0.0, 3);
        let mut rng = cmkd_train::rng::stream(4, "grads");
        let x = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (6, 4), DType::F32, &dev).unwrap();
        let c = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (6, 6), DType::F32, &dev).unwrap();
        let target = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (6, 4), DType::F32, &dev).unwrap();
        let t = Tensor::new(&[0u32, 2, 5, 9, 12, 15], &dev).unwrap();
        let keep = Tensor::new(&[1f32, 0., 1., 1., 0., 1.], &dev).unwrap();
        let drop = CondDrop::Masks {
            cond: &keep,
            image: &keep,
        };
        let loss = |pred: Tensor| {
            pred.sub(&target)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
        };
        let cached = loss(net.forward(&x, &t, &c, drop, None).unwrap());
        let joined = loss(
            forward_joined(
                &net,
                6,
                &net.cond_token(&c, drop).unwrap(),
                &net.step_tokens(&x, &t, drop).unwrap(),
                None,
            )
            .unwrap(),
        );
        let (lc, lj) = (
            cached.to_scalar::<f32>().unwrap(),
            joined.to_scalar::<f32>().unwrap(),
        );
        assert!((lc - lj).abs() < 1e-6 * lj.abs().max(1.0), "{lc} vs {lj}");
        let (gc, gj) = (cached.backward().unwrap(), joined.backward().unwrap());
        let vars = map.all_vars();
        assert!(vars.len() > 10);
        for var in &vars {
            let a = gc.get(var).expect("cached path reaches every weight");
            let b = gj.get(var).expect("joined path reaches every weight");
            let scale = b
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1e-3);
            let d = cmkd_train::compare::max_abs_diff(a, b).unwrap();
            assert!(d <= 1e-4 * scale, "{:?}: {d} (scale {scale})", var.shape());
        }
    }

    /// Training with dropout runs the prefix inside one segment; without dropout the prefix keys
    /// and values are computed once at batch 1. Both are the same function.
    #[test]
    fn joined_and_cached_prefix_paths_agree() {
        let dev = Device::Cpu;
        let (_map, net) = tiny_net(3, 0.1, 1);
        let mut rng = cmkd_train::rng::stream(2, "joined");
        let x = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (5, 4), DType::F32, &dev).unwrap();
        let c = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (5, 6), DType::F32, &dev).unwrap();
        let t = Tensor::new(&[0u32, 3, 7, 11, 15], &dev).unwrap();
        let keep = Tensor::new(&[1f32, 0., 1., 1., 0.], &dev).unwrap();
        for drop in [
            CondDrop::Keep,
            CondDrop::All,
            CondDrop::Masks {
                cond: &keep,
                image: &keep,
            },
        ] {
            let cached = net.forward(&x, &t, &c, drop, None).unwrap();
            let joined = forward_joined(
                &net,
                5,
                &net.cond_token(&c, drop).unwrap(),
                &net.step_tokens(&x, &t, drop).unwrap(),
                None,
            )
            .unwrap();
            let d = cmkd_train::compare::max_abs_diff(&cached, &joined).unwrap();
            assert!(d < 1e-5, "{drop:?}: {d}");
        }
    }
}
