//! The built shim loaded by `nvml-wrapper` — the crate llama-orch reads GPUs with — through its
//! real API: every query llama-orch makes, both process forms, the two-call protocols, lost
//! GPUs, each init failure and a state file rewritten between queries.
//!
//! The shim reads `LLORCH_NVML_SHIM_STATE` inside this process, and the environment is
//! process-global: the variable is set once, to one file, and every test holds [`LOCK`] while it
//! rewrites that file and talks to NVML.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use llorch_nvml_shim::{InitMode, STATE_ENV, ShimDevice, ShimProcess, ShimState, cdylib_near};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

static LOCK: Mutex<()> = Mutex::new(());

struct Fixture {
    _guard: MutexGuard<'static, ()>,
    state: PathBuf,
    so: PathBuf,
}

/// Serialises the tests and points the shim at this process's state file.
fn fixture() -> Fixture {
    static STATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (_, state) = STATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        // SAFETY (set_var): done once, under LOCK, which every test in this binary holds while
        // it touches NVML; nothing else here reads the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(STATE_ENV, &state)
        };
        (dir, state)
    });
    let exe = std::env::current_exe().unwrap();
    let so = cdylib_near(&exe).unwrap_or_else(|| panic!("no libllorch_nvml_shim.so near {exe:?}"));
    Fixture {
        _guard: guard,
        state: state.clone(),
        so,
    }
}

impl Fixture {
    fn write(&self, state: &ShimState) {
        state.write_atomically(&self.state).unwrap();
    }

    fn init(&self) -> Result<Nvml, NvmlError> {
        Nvml::builder().lib_path(self.so.as_os_str()).init()
    }
}

fn gpu(uuid: &str, total_gib: u64) -> ShimDevice {
    ShimDevice::new(uuid, &format!("NVML Shim {total_gib}G"), total_gib << 30)
}

fn state(devices: Vec<ShimDevice>) -> ShimState {
    ShimState::with_devices(devices)
}

/// Kills the child when the test ends, even on a failed assertion.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A shell carrying `KEY=value`, returned once its exec is complete (it printed a line).
fn running_with(key: &str, value: &str) -> Child {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Child(
        Command::new("sh")
            .args(["-c", "echo ready; read line"])
            .env(key, value)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child
}

#[test]
fn devices_names_uuids_memory_utilisation_and_versions_come_from_the_state_file() {
    let f = fixture();
    let mut second = gpu("GPU-22222222-2222-2222-2222-222222222222", 80);
    second.used_bytes = 5 << 30;
    second.utilization_pct = 63;
    f.write(&state(vec![
        gpu("GPU-11111111-1111-1111-1111-111111111111", 24),
        second,
    ]));
    let nvml = f.init().unwrap();
    assert_eq!(nvml.sys_driver_version().unwrap(), "580.00.shim");
    assert_eq!(nvml.sys_nvml_version().unwrap(), "12.580.00.shim");
    assert_eq!(nvml.device_count().unwrap(), 2);
    let d0 = nvml.device_by_index(0).unwrap();
    assert_eq!(d0.uuid().unwrap(), "GPU-11111111-1111-1111-1111-111111111111");
    assert_eq!(d0.name().unwrap(), "NVML Shim 24G");
    let m = d0.memory_info().unwrap();
    assert_eq!((m.total, m.used, m.free, m.reserved), (24 << 30, 0, 24 << 30, 0));
    let d1 = nvml.device_by_index(1).unwrap();
    assert_eq!(d1.name().unwrap(), "NVML Shim 80G");
    let m = d1.memory_info().unwrap();
    assert_eq!((m.total, m.used, m.free), (80 << 30, 5 << 30, 75 << 30));
    assert_eq!(d1.utilization_rates().unwrap().gpu, 63);
    assert!(matches!(nvml.device_by_index(2), Err(NvmlError::InvalidArg)));
}

#[test]
fn processes_by_pid_and_by_environment_are_listed_and_count_as_used_memory() {
    let f = fixture();
    let value = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let engine = running_with("LLORCH_SHIM_IT_ON_GPU", &value);
    let mut d = gpu("GPU-1", 24);
    d.used_bytes = 1 << 30;
    d.processes = vec![
        ShimProcess::Pid {
            pid: 4242,
            used_bytes: Some(2 << 30),
        },
        ShimProcess::Environ {
            environ: vec![format!("LLORCH_SHIM_IT_ON_GPU={value}")],
            used_bytes: Some(3 << 30),
        },
        ShimProcess::Pid {
            pid: 77,
            used_bytes: None,
        },
    ];
    f.write(&state(vec![d]));
    let nvml = f.init().unwrap();
    let device = nvml.device_by_index(0).unwrap();
    assert_eq!(device.running_compute_processes_count().unwrap(), 3);
    let listed: Vec<(u32, UsedGpuMemory, Option<u32>)> = device
        .running_compute_processes()
        .unwrap()
        .into_iter()
        .map(|p| (p.pid, p.used_gpu_memory, p.gpu_instance_id))
        .collect();
    assert_eq!(
        listed,
        [
            (4242, UsedGpuMemory::Used(2 << 30), None),
            (engine.0.id(), UsedGpuMemory::Used(3 << 30), None),
            (77, UsedGpuMemory::Unavailable, None),
        ]
    );
    assert!(device.running_graphics_processes().unwrap().is_empty());
    let m = device.memory_info().unwrap();
    assert_eq!((m.used, m.free), (5 << 30, 19 << 30));
    // The engine "leaves the GPU": its process is gone, and so is its memory.
    drop(engine);
    let pids: Vec<u32> = device
        .running_compute_processes()
        .unwrap()
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(pids, [4242, 77]);
    assert_eq!(device.memory_info().unwrap().used, 2 << 30);
}

#[test]
fn ecc_errors_and_pending_pages_are_reported_and_boards_without_ecc_say_not_supported() {
    let f = fixture();
    let mut bad = gpu("GPU-1", 24);
    bad.ecc_uncorrected = 3;
    bad.pages_pending_retirement = true;
    let mut geforce = gpu("GPU-2", 24);
    geforce.ecc_supported = false;
    f.write(&state(vec![gpu("GPU-0", 24), bad, geforce]));
    let nvml = f.init().unwrap();
    let ecc = |i| {
        nvml.device_by_index(i)
            .unwrap()
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
    };
    let pending = |i| nvml.device_by_index(i).unwrap().are_pages_pending_retired();
    assert_eq!((ecc(0).unwrap(), pending(0).unwrap()), (0, false));
    assert_eq!((ecc(1).unwrap(), pending(1).unwrap()), (3, true));
    let corrected = nvml
        .device_by_index(1)
        .unwrap()
        .total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate);
    assert_eq!(corrected.unwrap(), 0);
    assert!(matches!(ecc(2), Err(NvmlError::NotSupported)));
    assert!(matches!(pending(2), Err(NvmlError::NotSupported)));
}

#[test]
fn a_gpu_that_cannot_list_processes_answers_not_supported() {
    let f = fixture();
    let mut vgpu = gpu("GPU-1", 24);
    vgpu.processes_supported = false;
    f.write(&state(vec![gpu("GPU-0", 24), vgpu]));
    let nvml = f.init().unwrap();
    assert!(
        nvml.device_by_index(0)
            .unwrap()
            .running_compute_processes()
            .unwrap()
            .is_empty()
    );
    let hidden = nvml.device_by_index(1).unwrap();
    assert!(matches!(
        hidden.running_compute_processes(),
        Err(NvmlError::NotSupported)
    ));
    assert!(matches!(
        hidden.running_graphics_processes(),
        Err(NvmlError::NotSupported)
    ));
}

#[test]
fn a_lost_gpu_answers_gpu_lost_to_every_query_while_its_neighbour_works() {
    let f = fixture();
    let mut lost = gpu("GPU-1", 24);
    lost.lost = true;
    f.write(&state(vec![gpu("GPU-0", 24), lost]));
    let nvml = f.init().unwrap();
    let d = nvml.device_by_index(1);
    assert!(matches!(d, Err(NvmlError::GpuLost)), "{d:?}");
    assert_eq!(nvml.device_by_index(0).unwrap().uuid().unwrap(), "GPU-0");
}

#[test]
fn a_gpu_lost_after_its_handle_was_taken_fails_every_query_with_gpu_lost() {
    let f = fixture();
    let mut s = state(vec![gpu("GPU-0", 24)]);
    f.write(&s);
    let nvml = f.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(d.name().unwrap(), "NVML Shim 24G");
    s.devices[0].lost = true;
    f.write(&s);
    assert!(matches!(d.uuid(), Err(NvmlError::GpuLost)));
    assert!(matches!(d.name(), Err(NvmlError::GpuLost)));
    assert!(matches!(d.memory_info(), Err(NvmlError::GpuLost)));
    assert!(matches!(d.utilization_rates(), Err(NvmlError::GpuLost)));
    assert!(matches!(d.running_compute_processes(), Err(NvmlError::GpuLost)));
    assert!(matches!(d.running_graphics_processes(), Err(NvmlError::GpuLost)));
    let ecc = d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile);
    assert!(matches!(ecc, Err(NvmlError::GpuLost)));
    assert!(matches!(d.are_pages_pending_retired(), Err(NvmlError::GpuLost)));
}

#[test]
fn the_state_file_is_read_again_on_every_query() {
    let f = fixture();
    let mut s = state(vec![gpu("GPU-0", 24)]);
    f.write(&s);
    let nvml = f.init().unwrap();
    assert_eq!(nvml.device_count().unwrap(), 1);
    s.devices[0].used_bytes = 20 << 30;
    s.devices.push(gpu("GPU-1", 48));
    f.write(&s);
    assert_eq!(nvml.device_count().unwrap(), 2);
    assert_eq!(nvml.device_by_index(0).unwrap().memory_info().unwrap().free, 4 << 30);
    assert_eq!(nvml.device_by_index(1).unwrap().uuid().unwrap(), "GPU-1");
}

#[test]
fn each_init_failure_mode_is_the_matching_nvml_error() {
    let f = fixture();
    let mut s = state(vec![gpu("GPU-0", 24)]);
    for (mode, check) in [
        (
            InitMode::DriverNotLoaded,
            (|e| matches!(e, NvmlError::DriverNotLoaded)) as fn(&NvmlError) -> bool,
        ),
        (InitMode::LibRmVersionMismatch, |e| {
            matches!(e, NvmlError::LibRmVersionMismatch)
        }),
        (InitMode::NoPermission, |e| matches!(e, NvmlError::NoPermission)),
    ] {
        s.init = mode;
        f.write(&s);
        let e = f.init().err();
        assert!(e.as_ref().is_some_and(check), "{mode:?}: {e:?}");
    }
    s.init = InitMode::Ok;
    f.write(&s);
    assert_eq!(f.init().unwrap().device_count().unwrap(), 1);
}

#[test]
fn a_missing_or_broken_state_file_fails_init_as_unknown() {
    let f = fixture();
    std::fs::write(&f.state, "{\"devices\": [").unwrap();
    assert!(matches!(f.init(), Err(NvmlError::Unknown)));
    std::fs::remove_file(&f.state).unwrap();
    assert!(matches!(f.init(), Err(NvmlError::Unknown)));
    // And a valid one brings it back: nothing is cached from the failures.
    f.write(&state(vec![]));
    assert_eq!(f.init().unwrap().device_count().unwrap(), 0);
}
