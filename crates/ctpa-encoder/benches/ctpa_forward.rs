//! Forward pass of the CTPA encoder on one 128x128x64 volume, random weights, f32 on the CPU:
//! `small` is `CtpaEncoderConfig::small()` (the CPU default), `paper` a ResNet-18 slice encoder
//! (512-d slices) with a DINOv2-small-sized sequence ViT (width 384, 12 blocks, 6 heads).
//!
//! `cargo bench -p ctpa-encoder --bench ctpa_forward -- --warm-up-time 1 --measurement-time 3`
//! Peer: `benches/peers/encoders_torch.py`.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use ctpa_encoder::{CtpaEncoder, CtpaEncoderConfig, SequenceVitConfig};
use cxr_encoder::resnet::ResNetConfig;
use med_io::{Geometry, Volume};
use rand::{Rng, SeedableRng};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let data = (0..128 * 128 * 64).map(|_| rng.random::<f32>()).collect();
    let vol = Volume::new(data, [128, 128, 64], Geometry::default()).unwrap();
    let small = CtpaEncoderConfig::small();
    let paper = CtpaEncoderConfig {
        slice: ResNetConfig {
            in_channels: 1,
            ..ResNetConfig::resnet18()
        },
        freeze_slice: true,
        vit: SequenceVitConfig {
            positions: 64,
            ..SequenceVitConfig::dinov2_small(512)
        },
        slice_chunk: 64,
    };
    let mut group = c.benchmark_group("ctpa_forward_128x128x64");
    group.sample_size(10);
    for (name, config) in [("small", small), ("paper", paper)] {
        let enc = CtpaEncoder::new(config, 0, DType::F32, &dev).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| black_box(enc.forward(black_box(&[&vol]), false).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
