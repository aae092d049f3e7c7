//! ResNets with torchvision / timm tensor names and trainable batch norm.
//!
//! `ResNetConfig::resnet50()` loads torchvision's or timm's `resnet50` state dict unchanged (the
//! RadImageNet ResNet-50 included, once converted to safetensors); smaller widths and depths build
//! the same architecture for tests and CPU budgets. Unlike candle-transformers' ResNet, the batch
//! norm trains (batch statistics, running-statistics update) and the stem's 3x3/2 max-pool has a
//! gradient (see [`crate::pool`]), so the whole network can be fine-tuned.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::batch_norm::BatchNorm2d;
use crate::pool::max_pool_3x3_s2;
use crate::{Error, Result};

/// Residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34); expansion 1.
    Basic,
    /// 1x1, 3x3 (strided, torchvision "v1.5"), 1x1 convolutions (ResNet-50+); expansion 4.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Architecture of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Block type.
    pub block: BlockKind,
    /// Blocks per stage.
    pub layers: [usize; 4],
    /// Channels of the 7x7 stem convolution (torchvision: 64).
    pub stem_width: usize,
    /// Inner width of each stage (torchvision: 64, 128, 256, 512); a stage outputs
    /// `width * expansion` channels.
    pub widths: [usize; 4],
    /// Input channels (3 for ImageNet models, 1 for CT slices).
    pub in_channels: usize,
}

impl ResNetConfig {
    /// torchvision / timm ResNet-50.
    pub fn resnet50() -> Self {
        Self {
            block: BlockKind::Bottleneck,
            layers: [3, 4, 6, 3],
            stem_width: 64,
            widths: [64, 128, 256, 512],
            in_channels: 3,
        }
    }

    /// torchvision / timm ResNet-18.
    pub fn resnet18() -> Self {
        Self {
            block: BlockKind::Basic,
            layers: [2, 2, 2, 2],
            ..Self::resnet50()
        }
    }

    /// Channels of the pooled output.
    pub fn out_dim(&self) -> usize {
        self.widths[3] * self.block.expansion()
    }

    fn validate(&self) -> Result<()> {
        if self.in_channels == 0 || self.stem_width == 0 || self.widths.contains(&0) {
            return Err(Error::config(
                "resnet",
                format!("widths must be non-zero: {self:?}"),
            ));
        }
        if self.layers.contains(&0) {
            return Err(Error::config(
                "resnet.layers",
                "every stage needs at least one block",
            ));
        }
        Ok(())
    }
}

fn conv(
    i: usize,
    o: usize,
    k: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    Ok(candle_nn::conv2d_no_bias(i, o, k, cfg, vb)?)
}

struct Downsample {
    conv: Conv2d,
    bn: BatchNorm2d,
}

struct ResBlock {
    convs: Vec<(Conv2d, BatchNorm2d)>,
    downsample: Option<Downsample>,
}

impl ResBlock {
    fn new(
        kind: BlockKind,
        inp: usize,
        width: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let out = width * kind.expansion();
        let mut convs = Vec::new();
        match kind {
            BlockKind::Basic => {
                convs.push((
                    conv(inp, width, 3, stride, 1, vb.pp("conv1"))?,
                    BatchNorm2d::new(width, vb.pp("bn1"))?,
                ));
                convs.push((
                    conv(width, width, 3, 1, 1, vb.pp("conv2"))?,
                    BatchNorm2d::new(width, vb.pp("bn2"))?,
                ));
            }
            BlockKind::Bottleneck => {
                convs.push((
                    conv(inp, width, 1, 1, 0, vb.pp("conv1"))?,
                    BatchNorm2d::new(width, vb.pp("bn1"))?,
                ));
                convs.push((
                    conv(width, width, 3, stride, 1, vb.pp("conv2"))?,
                    BatchNorm2d::new(width, vb.pp("bn2"))?,
                ));
                convs.push((
                    conv(width, out, 1, 1, 0, vb.pp("conv3"))?,
                    BatchNorm2d::new(out, vb.pp("bn3"))?,
                ));
            }
        }
        let downsample = if stride != 1 || inp != out {
            Some(Downsample {
                conv: conv(inp, out, 1, stride, 0, vb.pp("downsample.0"))?,
                bn: BatchNorm2d::new(out, vb.pp("downsample.1"))?,
            })
        } else {
            None
        };
        Ok(Self { convs, downsample })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            h = bn.forward(&c.forward(&h)?, train)?;
            if i != last {
                h = h.relu()?;
            }
        }
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(&d.conv.forward(x)?, train)?,
            None => x.clone(),
        };
        Ok((h + identity)?.relu()?)
    }
}

/// A ResNet trunk: stem, four stages, global average pool. The classifier `fc` of upstream
/// checkpoints is not part of it (the encoders put their own projection on top).
pub struct ResNet {
    config: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    stages: Vec<Vec<ResBlock>>,
}

impl ResNet {
    /// Builds the trunk under `vb` with torchvision names (`conv1`, `bn1`, `layer1.0.conv1`, ...).
    pub fn new(config: ResNetConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let conv1 = conv(
            config.in_channels,
            config.stem_width,
            7,
            2,
            3,
            vb.pp("conv1"),
        )?;
        let bn1 = BatchNorm2d::new(config.stem_width, vb.pp("bn1"))?;
        let mut inp = config.stem_width;
        let mut stages = Vec::new();
        for s in 0..4 {
            let stride = if s == 0 { 1 } else { 2 };
            let vbs = vb.pp(format!("layer{}", s + 1));
            let mut blocks = Vec::new();
            for b in 0..config.layers[s] {
                let blk = ResBlock::new(
                    config.block,
                    inp,
                    config.widths[s],
                    if b == 0 { stride } else { 1 },
                    vbs.pp(b),
                )?;
                inp = config.widths[s] * config.block.expansion();
                blocks.push(blk);
            }
            stages.push(blocks);
        }
        Ok(Self {
            config,
            conv1,
            bn1,
            stages,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// Feature map before pooling, `(batch, out_dim, h/32, w/32)`.
    pub fn forward_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() != 4 {
            return Err(Error::Input(format!(
                "ResNet takes (batch, channels, h, w), got {:?}",
                x.dims()
            )));
        }
        let c = x.dim(1)?;
        if c != self.config.in_channels {
            return Err(Error::Channels {
                model: "ResNet",
                expected: self.config.in_channels,
                found: c,
            });
        }
        let mut h = self.bn1.forward(&self.conv1.forward(x)?, train)?.relu()?;
        h = max_pool_3x3_s2(&h)?;
        for stage in &self.stages {
            for blk in stage {
                h = blk.forward(&h, train)?;
            }
        }
        Ok(h)
    }

    /// Globally average-pooled features `(batch, out_dim)`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_map(x, train)?.mean(3)?.mean(2)?)
    }
}
