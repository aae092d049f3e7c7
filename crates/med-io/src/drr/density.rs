//! DiffDRR's conversion from Hounsfield units to the density that its renderers integrate.

use crate::error::{Error, Result};
use crate::volume::Volume;

/// HU at or below which a voxel counts as air.
pub const AIR_HU: f32 = -800.0;
/// HU above which a voxel counts as bone.
pub const BONE_HU: f32 = 350.0;

/// Converts a HU volume to DiffDRR's normalised density (`diffdrr.data.transform_hu_to_density`).
///
/// Air (HU <= -800) takes the lowest soft-tissue value, soft tissue (-800 < HU <= 350) keeps its HU,
/// bone (HU > 350) is multiplied by `bone_attenuation_multiplier`; the result is shifted and scaled to
/// `[0, 1]`. There is no physical attenuation coefficient and no exponential: DiffDRR's DRR is the line
/// integral of this density. NaN voxels are an error.
pub fn hu_to_density(volume: &Volume, bone_attenuation_multiplier: f32) -> Result<Volume> {
    if !bone_attenuation_multiplier.is_finite() || bone_attenuation_multiplier <= 0.0 {
        return Err(Error::Param {
            name: "bone_attenuation_multiplier",
            reason: format!("must be finite and positive, got {bone_attenuation_multiplier}"),
        });
    }
    if let Some(pos) = volume.data().iter().position(|v| !v.is_finite()) {
        return Err(Error::Param {
            name: "volume",
            reason: format!("voxel {pos} is not finite; cannot convert HU to density"),
        });
    }
    let soft_min = volume
        .data()
        .iter()
        .copied()
        .filter(|&v| v > AIR_HU && v <= BONE_HU)
        .fold(f32::INFINITY, f32::min);
    if !soft_min.is_finite() {
        return Err(Error::Param {
            name: "volume",
            reason: "no soft-tissue voxel (-800 < HU <= 350): is this a CT in Hounsfield units?"
                .into(),
        });
    }
    let mut density: Vec<f32> = volume
        .data()
        .iter()
        .map(|&v| {
            if v <= AIR_HU {
                soft_min
            } else if v <= BONE_HU {
                v
            } else {
                v * bone_attenuation_multiplier
            }
        })
        .collect();
    let lo = density.iter().copied().fold(f32::INFINITY, f32::min);
    density.iter_mut().for_each(|d| *d -= lo);
    let hi = density.iter().copied().fold(0.0f32, f32::max);
    if hi <= 0.0 {
        return Err(Error::Param {
            name: "volume",
            reason: "density is constant after the HU rule; DiffDRR would divide by zero".into(),
        });
    }
    density.iter_mut().for_each(|d| *d /= hi);
    volume.with_data(density)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn follows_the_three_branches() {
        let v = Volume::new(
            vec![-1000.0, -500.0, 0.0, 1000.0],
            [4, 1, 1],
            Geometry::default(),
        )
        .unwrap();
        let d = hu_to_density(&v, 2.0).unwrap();
        // air -> -500 (soft min); bone 1000 * 2 = 2000; range -500..2000.
        let want = [0.0, 0.0, 500.0 / 2500.0, 1.0];
        for (a, b) in d.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_degenerate_input() {
        let air = Volume::filled([2, 2, 2], Geometry::default(), -1000.0).unwrap();
        assert!(hu_to_density(&air, 1.0).is_err());
        let flat = Volume::filled([2, 2, 2], Geometry::default(), 0.0).unwrap();
        assert!(hu_to_density(&flat, 1.0).is_err());
        let mut nan = Volume::filled([2, 1, 1], Geometry::default(), 0.0).unwrap();
        nan.data_mut()[1] = f32::NAN;
        assert!(hu_to_density(&nan, 1.0).is_err());
        let ok = Volume::new(vec![0.0, 100.0], [2, 1, 1], Geometry::default()).unwrap();
        assert!(hu_to_density(&ok, 0.0).is_err());
    }
}
