//! Property tests of the sequence ViT's batching.

use candle_core::{DType, Device, Tensor};
use ctpa_encoder::{SequenceVit, SequenceVitConfig};
use proptest::prelude::*;

fn vit() -> SequenceVit {
    let cfg = SequenceVitConfig {
        in_dim: 6,
        width: 8,
        depth: 1,
        heads: 2,
        mlp_ratio: 2,
        positions: 5,
        layer_scale: 0.5,
        eps: 1e-6,
        embed_dim: 4,
    };
    SequenceVit::new(cfg, 11, DType::F32, &Device::Cpu).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any batch of sequences with any lengths, padded with arbitrary junk, gives each sequence the
    /// output it has alone.
    #[test]
    fn batch_output_is_independent_of_padding_and_neighbours(
        lengths in proptest::collection::vec(1usize..9, 1..5),
        seed in 0u64..1000,
        junk in -100f32..100.0,
    ) {
        let model = vit();
        let max = *lengths.iter().max().unwrap();
        let mut g = cmkd_train::rng::stream(seed, "seq");
        let seqs: Vec<Tensor> = lengths.iter().map(|&l| cmkd_train::rng::randn(&mut g, 0.0, 1.0, (l, 6), DType::F32, &Device::Cpu).unwrap()).collect();
        let padded: Vec<Tensor> = seqs.iter().map(|s| {
            let l = s.dim(0).unwrap();
            if l == max { s.clone() } else {
                Tensor::cat(&[s.clone(), (Tensor::ones((max - l, 6), DType::F32, &Device::Cpu).unwrap() * junk as f64).unwrap()], 0).unwrap()
            }
        }).collect();
        let (z, _) = model.forward(&Tensor::stack(&padded, 0).unwrap(), &lengths).unwrap();
        for (i, s) in seqs.iter().enumerate() {
            let (zi, _) = model.forward(&s.unsqueeze(0).unwrap(), &[s.dim(0).unwrap()]).unwrap();
            let d = (z.get(i).unwrap() - zi.get(0).unwrap()).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            prop_assert!(d < 1e-5, "sequence {} of {:?}: {}", i, lengths, d);
        }
    }
}
