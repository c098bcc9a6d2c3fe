//! Synthetic observations: N files, devices whose file counts follow a long-tailed (Pareto)
//! distribution, and file popularity skewed so that a few files are seen by many devices.
//! Everything derives from a seed, so the benchmark can name known hashes without storing them.

use std::io::Write;

use fileintel_core::{Md5, Sha1, Sha256};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// SplitMix64: a fast, well-mixed stream for turning file numbers into hash bytes.
fn splitmix(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill(file: u64, salt: u64, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let word = splitmix(file.wrapping_mul(0x1000_0001).wrapping_add(salt * 64 + i as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The three hashes of synthetic file number `file`.
pub fn file_hashes(file: u64) -> (Sha1, Sha256, Md5) {
    let (mut sha1, mut sha256, mut md5) = ([0u8; 20], [0u8; 32], [0u8; 16]);
    fill(file, 1, &mut sha1);
    fill(file, 2, &mut sha256);
    fill(file, 3, &mut md5);
    (Sha1(sha1), Sha256(sha256), Md5(md5))
}

/// Shape of the synthetic fleet.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub files: u64,
    pub devices: u64,
    pub tenants: u64,
}

impl Fleet {
    pub fn for_files(files: u64) -> Self {
        Fleet { files: files.max(1), devices: (files / 8).max(1), tenants: 4 }
    }

    /// The name of tenant `n` of the fleet.
    pub fn tenant_name(n: u64) -> String {
        format!("tenant-{n}")
    }
}

const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const SPAN: i64 = 300 * 86_400;

fn write_line(out: &mut impl Write, rng: &mut SmallRng, fleet: &Fleet, device: u64, file: u64) -> std::io::Result<()> {
    let (sha1, sha256, md5) = file_hashes(file);
    let tenant = Fleet::tenant_name(device % fleet.tenants);
    let seconds = START + rng.random_range(0..SPAN);
    let ticks = rng.random_range(0..10_000_000u32);
    let time = fileintel_core::Timestamp(seconds * 10_000_000 + i64::from(ticks));
    writeln!(
        out,
        r#"{{"tenantId":"{tenant}","deviceId":"dev-{device:08}","timestamp":"{time}","sha1":"{sha1}","sha256":"{sha256}","md5":"{md5}","size":{},"fileName":"f{file}.exe"}}"#,
        4096 + (file % 1_000_000) * 17
    )
}

/// Writes the observations; returns how many lines were written.
/// Every file is observed at least once; devices then see a Pareto-distributed number of further
/// files (shape 1.2, minimum 1, capped), drawn with a strong skew towards popular files.
pub fn write_observations(out: &mut impl Write, fleet: &Fleet, seed: u64) -> std::io::Result<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut lines = 0;
    for file in 0..fleet.files {
        let device = splitmix(file ^ seed) % fleet.devices;
        write_line(out, &mut rng, fleet, device, file)?;
        lines += 1;
    }
    let cap = (fleet.files / 10).max(1);
    for device in 0..fleet.devices {
        let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
        let extra = ((1.0 / uniform.powf(1.0 / 1.2)).floor() as u64).min(cap);
        for _ in 0..extra {
            let draw: f64 = rng.random();
            let file = ((fleet.files as f64) * draw.powi(4)) as u64;
            write_line(out, &mut rng, fleet, device, file.min(fleet.files - 1))?;
            lines += 1;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fileintel_core::Observation;

    #[test]
    fn synthetic_lines_parse_and_cover_every_file() {
        let fleet = Fleet::for_files(500);
        let mut out = Vec::new();
        let lines = write_observations(&mut out, &fleet, 1).unwrap();
        assert!(lines > 500);
        let mut seen = std::collections::HashSet::new();
        for line in out.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            let observation = Observation::parse_json(line).unwrap();
            seen.insert(observation.hashes.sha1.unwrap());
        }
        assert_eq!(seen.len(), 500);
        assert!(seen.contains(&file_hashes(499).0));
    }
}
