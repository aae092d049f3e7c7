//! Forward pass of each CXR encoder (frozen backbone, evaluation mode) on a batch of 2 224x224
//! images, random weights, f32 on the CPU.
//!
//! `cargo bench -p cxr-encoder --bench cxr_forward -- --warm-up-time 1 --measurement-time 3`
//! Peer: `benches/peers/encoders_torch.py` (torchvision ResNet-50, transformers Dinov2Model,
//! open_clip's timm ViT-B/16 tower).

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use cxr_encoder::dinov2::Dinov2Config;
use cxr_encoder::{CxrEncoder, CxrEncoderConfig};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = cmkd_train::rng::stream(0, "bench");
    let x = cmkd_train::rng::uniform(&mut g, 0.0, 1.0, (2, 3, 224, 224), DType::F32, &dev).unwrap();
    let mut group = c.benchmark_group("cxr_forward_b2_224");
    group.sample_size(10);
    for (name, config) in [
        ("resnet50", CxrEncoderConfig::resnet50()),
        (
            "dinov2_small",
            CxrEncoderConfig::dinov2(Dinov2Config::small()),
        ),
        (
            "dinov2_base",
            CxrEncoderConfig::dinov2(Dinov2Config::base()),
        ),
        ("clip_vit_b16", CxrEncoderConfig::biomedclip()),
    ] {
        let enc = CxrEncoder::new(config, 0, DType::F32, &dev).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| black_box(enc.forward(black_box(&x), false).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
