//! Slice encoders: 2D networks applied to every axial slice of a volume.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use cxr_encoder::batch_norm::is_buffer;
use cxr_encoder::resnet::{BlockKind, ResNet, ResNetConfig};
use cxr_encoder::CxrEncoder;

use crate::{Error, Result};

/// A 2D network that maps a batch of slices `(n, channels, h, w)` to vectors `(n, out_dim)`.
///
/// Implemented by [`SliceCnn`] (a ResNet-style CNN, trained from scratch or loaded) and by
/// [`CxrEncoder`] (any pretrained 2D backbone of `cxr-encoder` as a slice feature extractor).
pub trait SliceEncoder {
    /// Channels of one slice as the encoder takes it (1 for CT).
    fn in_channels(&self) -> usize;
    /// Size of a slice embedding.
    fn out_dim(&self) -> usize;
    /// Encodes `(n, in_channels, h, w)` slices; `train` turns on training-mode batch norm.
    fn encode(&self, slices: &Tensor, train: bool) -> Result<Tensor>;
    /// Variables to optimise, sorted by name (empty when frozen).
    fn trainable_vars(&self) -> Vec<(String, Var)>;
    /// All variables (for checkpoints), sorted by name.
    fn all_vars(&self) -> Vec<(String, Var)>;
}

/// A ResNet trunk over single-channel slices with globally pooled output. Owns its variables
/// (torchvision names: `conv1`, `bn1`, `layer1.0.conv1`, ...), so a checkpoint of the same
/// architecture loads with [`cxr_encoder::load_into`].
pub struct SliceCnn {
    map: VarMap,
    net: ResNet,
    frozen: bool,
    dtype: DType,
    device: Device,
}

impl SliceCnn {
    /// A small CNN for 1-channel slices: ResNet basic blocks `[1, 1, 1, 1]`, widths 8-16-32-64.
    pub fn small_config() -> ResNetConfig {
        ResNetConfig {
            block: BlockKind::Basic,
            layers: [1, 1, 1, 1],
            stem_width: 8,
            widths: [8, 16, 32, 64],
            in_channels: 1,
        }
    }

    /// Builds the network with weights drawn reproducibly from `seed`.
    pub fn new(
        config: ResNetConfig,
        frozen: bool,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, dtype, device);
        let net = ResNet::new(config, vb)?;
        Ok(Self {
            map,
            net,
            frozen,
            dtype,
            device: device.clone(),
        })
    }

    /// The variables (to load pretrained weights into, or to save).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// The architecture.
    pub fn config(&self) -> &ResNetConfig {
        self.net.config()
    }

    /// Whether the network is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes (true) or unfreezes the network.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }
}

impl SliceEncoder for SliceCnn {
    fn in_channels(&self) -> usize {
        self.net.config().in_channels
    }

    fn out_dim(&self) -> usize {
        self.net.config().out_dim()
    }

    fn encode(&self, slices: &Tensor, train: bool) -> Result<Tensor> {
        if self.frozen {
            // Built on detached views of the variables: the same function, no graph recorded,
            // each activation freed once the next layer has read it; the output is a constant.
            let vb = cmkd_train::params::frozen_builder(&self.map, self.dtype, &self.device);
            let net = ResNet::new(*self.net.config(), vb)?;
            return Ok(net.forward(slices, false)?.detach());
        }
        Ok(self.net.forward(slices, train)?)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        if self.frozen {
            return Vec::new();
        }
        cmkd_train::sorted_vars(&self.map)
            .into_iter()
            .filter(|(n, _)| !is_buffer(n))
            .collect()
    }

    fn all_vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(&self.map)
    }
}

/// A `cxr-encoder` model as slice encoder: its backbone features (not its projection or head). The
/// gray slice is repeated to the backbone's channels.
impl SliceEncoder for CxrEncoder {
    fn in_channels(&self) -> usize {
        1
    }

    fn out_dim(&self) -> usize {
        self.config().backbone.feature_dim()
    }

    fn encode(&self, slices: &Tensor, train: bool) -> Result<Tensor> {
        let c = match self.config().backbone {
            cxr_encoder::BackboneConfig::ResNet(r) => r.in_channels,
            cxr_encoder::BackboneConfig::Dinov2(d) => d.num_channels,
            cxr_encoder::BackboneConfig::Clip(c) => c.in_channels,
        };
        if slices.rank() != 4 || slices.dim(1)? != 1 {
            return Err(Error::Input(format!(
                "slices must be (n, 1, h, w), got {:?}",
                slices.dims()
            )));
        }
        let x = if c == 1 {
            slices.clone()
        } else {
            slices.repeat((1, c, 1, 1))?
        };
        Ok(self.features(&x, train)?)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        CxrEncoder::trainable_vars(self)
            .into_iter()
            .filter(|(n, _)| n.starts_with(cxr_encoder::BACKBONE_PREFIX))
            .collect()
    }

    fn all_vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(self.var_map())
    }
}
