//! The program's own cost per packet, from `BPF_PROG_TEST_RUN`: the kernel runs the program
//! on one packet many times and reports the mean time per run.
//!
//! Test runs repeat one packet, so lookups hit warm caches. The cold case (real traffic to
//! the whole Internet) is timed with a benchmark-only program that looks up
//! [`COLD_LOOKUPS`](filter_tcbpf_common::COLD_LOOKUPS) pseudo-random addresses per run
//! (IPv4, or IPv6 in 2000::/3), less the same program without the lookups; for each family
//! the list holds.

use std::net::IpAddr;
use std::time::Duration;

use aya::Ebpf;
use aya::programs::{TestRun, TestRunOptions};
use filter_core::{CidrList, CostCase, CostProbe, Family, ProgramCost, Result};
use filter_tcbpf_common as common;

use crate::error::os_error;
use crate::instance::program_mut;
use crate::{Fill, Table, TcbpfFilter, kernel};

/// The filter and IPv4 cold-lookup programs of a table.
fn programs(table: Table) -> (&'static str, &'static str) {
    (filter_program(table), cold_programs(table, Family::V4).0)
}

fn filter_program(table: Table) -> &'static str {
    match table {
        Table::LpmTrie => common::PROG_FILTER,
        Table::Dir24 => common::PROG_FILTER_DIR,
    }
}

/// The cold-lookup program of a table and family, and the same without the lookups.
fn cold_programs(table: Table, family: Family) -> (&'static str, &'static str) {
    match (table, family) {
        (Table::LpmTrie, Family::V4) => (common::PROG_COLD, common::PROG_COLD_BASE),
        (Table::Dir24, Family::V4) => (common::PROG_COLD_DIR, common::PROG_COLD_BASE),
        (Table::LpmTrie, Family::V6) => (common::PROG_COLD_V6, common::PROG_COLD_V6_BASE),
        (Table::Dir24, Family::V6) => (common::PROG_COLD_V6_DIR, common::PROG_COLD_V6_BASE),
    }
}

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The program that passes every packet at once (the floor).
    Empty,
    /// The filter program on a packet to this destination.
    Filter(IpAddr),
    /// [`COLD_LOOKUPS`](common::COLD_LOOKUPS) lookups of pseudo-random IPv4 addresses.
    ColdLookups,
    /// The same pseudo-random addresses without the lookups.
    ColdBase,
}

/// The filter program and its maps loaded with a list, attached nowhere: for timing the
/// program alone (benchmarks). Needs the same privileges as loading the filter.
pub struct Standalone {
    ebpf: Ebpf,
    table: Table,
}

impl Standalone {
    /// Loads the program with maps filled with `list`, destinations looked up in `table`.
    ///
    /// # Errors
    /// [`Error::Kernel`](filter_core::Error::Kernel) when the kernel refuses the maps or the
    /// programs; [`Error::Limit`](filter_core::Error::Limit) when the list does not fit.
    pub fn load(list: &CidrList, table: Table) -> Result<Self> {
        let (filter, _) = programs(table);
        Ok(Self {
            ebpf: TcbpfFilter::instance(list, Fill::Batch, filter, table.into())?.ebpf,
            table,
        })
    }

    /// Runs `case` `repeat` times in the kernel and returns the mean time per run.
    ///
    /// # Errors
    /// [`Error::Kernel`](filter_core::Error::Kernel) when `BPF_PROG_TEST_RUN` is refused.
    pub fn time(&mut self, case: Case, repeat: u32) -> Result<Duration> {
        let floor = IpAddr::from([198, 19, 0, 1]);
        let (filter, cold) = programs(self.table);
        let (program, dst) = match case {
            Case::Empty => (common::PROG_EMPTY, floor),
            Case::Filter(dst) => (filter, dst),
            Case::ColdLookups => (cold, floor),
            Case::ColdBase => (common::PROG_COLD_BASE, floor),
        };
        let ns = time(&mut self.ebpf, program, &udp_packet(dst), repeat, 1)?;
        Ok(Duration::from_secs_f64(ns[0] / 1e9))
    }

    /// [`measure`] on this program.
    ///
    /// # Errors
    /// As [`time`](Self::time).
    pub fn measure(
        &mut self,
        probes: &[(CostProbe, IpAddr)],
        cold: &[Family],
        settings: &Settings,
    ) -> Result<Vec<ProgramCost>> {
        measure(&mut self.ebpf, self.table, probes, cold, settings)
    }
}

/// How long to time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Program runs per timed round.
    pub repeat: u32,
    /// Timed rounds per case (the median is reported).
    pub rounds: u32,
    /// Runs per round of the cold-cache program (each does many lookups).
    pub cold_repeat: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            repeat: 200_000,
            rounds: 9,
            cold_repeat: 2_000,
        }
    }
}

/// A 64-byte UDP packet from the testbed's client to `dst`, with its Ethernet header.
pub fn udp_packet(dst: IpAddr) -> Vec<u8> {
    let mut p = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    let payload = [0u8; 18];
    match dst {
        IpAddr::V4(dst) => {
            p.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = (20 + 8 + payload.len()) as u16;
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            p.extend_from_slice(&[198, 18, 0, 1]);
            p.extend_from_slice(&dst.octets());
        }
        IpAddr::V6(dst) => {
            p.extend_from_slice(&0x86DDu16.to_be_bytes());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[17, 64]);
            p.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p.extend_from_slice(&dst.octets());
        }
    }
    p.extend_from_slice(&[0x9c, 0x40, 0x23, 0x28]); // ports 40000 -> 9000
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&payload);
    p
}

fn time(
    ebpf: &mut Ebpf,
    program: &str,
    packet: &[u8],
    repeat: u32,
    rounds: u32,
) -> Result<Vec<f64>> {
    let prog = program_mut(ebpf, program)?;
    if prog.fd().is_err() {
        prog.load()
            .map_err(|e| kernel(format!("loading {program}"), e))?;
    }
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        // The kernel stops a long test run when a signal is pending (EINTR): run it again.
        let mut interrupted = 0;
        let result = loop {
            match prog.test_run(TestRunOptions {
                data_in: Some(packet),
                repeat,
                ..TestRunOptions::default()
            }) {
                Err(e) if os_error(&e) == Some(libc::EINTR) && interrupted < 10 => {
                    interrupted += 1;
                }
                other => break other,
            }
        }
        .map_err(|e| kernel(format!("BPF_PROG_TEST_RUN of {program}"), e))?;
        samples.push(result.duration.as_secs_f64() * 1e9);
    }
    Ok(samples)
}

fn summary(case: CostCase, mut samples: Vec<f64>, repeat: u32) -> ProgramCost {
    samples.sort_by(f64::total_cmp);
    ProgramCost {
        case,
        median_ns: samples[samples.len() / 2],
        min_ns: samples[0],
        max_ns: samples[samples.len() - 1],
        repeat,
        rounds: u32::try_from(samples.len()).unwrap_or(u32::MAX),
    }
}

/// Times the empty program (the method's floor), the filter for each probe, and cold
/// lookups in each of `cold` (the families the list holds), rounds interleaved so that a
/// change in machine speed hits every case alike.
///
/// # Errors
/// [`Error::Kernel`](filter_core::Error::Kernel) when `BPF_PROG_TEST_RUN` is refused.
pub fn measure(
    ebpf: &mut Ebpf,
    table: Table,
    probes: &[(CostProbe, IpAddr)],
    cold: &[Family],
    settings: &Settings,
) -> Result<Vec<ProgramCost>> {
    let filter = filter_program(table);
    let floor_packet = udp_packet(IpAddr::from([198, 19, 0, 1]));
    let mut cases: Vec<(CostCase, &str, Vec<u8>, u32)> = vec![(
        CostCase::Floor,
        common::PROG_EMPTY,
        floor_packet.clone(),
        settings.repeat,
    )];
    for &(probe, dst) in probes {
        cases.push((
            CostCase::Probe(probe),
            filter,
            udp_packet(dst),
            settings.repeat,
        ));
    }
    let first_cold = cases.len();
    for &family in cold {
        let (with_lookups, base) = cold_programs(table, family);
        let lookups = common::COLD_LOOKUPS;
        cases.push((
            CostCase::ColdLookups { family, lookups },
            with_lookups,
            floor_packet.clone(),
            settings.cold_repeat,
        ));
        cases.push((
            CostCase::ColdBase { family, lookups },
            base,
            floor_packet.clone(),
            settings.cold_repeat,
        ));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..settings.rounds {
        for (i, (_, program, packet, repeat)) in cases.iter().enumerate() {
            samples[i].extend(time(ebpf, program, packet, *repeat, 1)?);
        }
    }
    let mut costs: Vec<ProgramCost> = cases
        .iter()
        .zip(samples.iter())
        .map(|((case, _, _, repeat), s)| summary(*case, s.clone(), *repeat))
        .collect();
    // Per cold lookup: the difference of the two cold programs, round by round.
    let lookups = f64::from(common::COLD_LOOKUPS);
    for (i, &family) in cold.iter().enumerate() {
        let (with, without) = (
            &samples[first_cold + 2 * i],
            &samples[first_cold + 2 * i + 1],
        );
        let per_lookup: Vec<f64> = with
            .iter()
            .zip(without)
            .map(|(c, b)| (c - b) / lookups)
            .collect();
        costs.push(summary(
            CostCase::ColdPerLookup(family),
            per_lookup,
            settings.cold_repeat,
        ));
    }
    Ok(costs)
}
