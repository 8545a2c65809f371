//! Who wrote a log line or ran a process: container and pod identity as ECS fields.
//!
//! Three sources, all plain files so that no API call sits on the log path:
//!
//! * a Docker container's `config.v2.json` (and `hostconfig.json`) under the engine's data root,
//!   which has the same shape as `docker inspect` ([`from_inspect`] reads either);
//! * a CRI log path, `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`
//!   ([`from_cri_path`]), with the container id from the `/var/log/containers` symlink;
//! * `io.kubernetes.*` labels, which Docker-based Kubernetes nodes put on containers.
//!
//! [`ContainerMeta::apply`] writes the fields into an event: `container.id|name|runtime`,
//! `container.image.name|tag`, `container.labels.*`, `kubernetes.namespace`,
//! `kubernetes.pod.name|uid`, `kubernetes.container.name`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

/// What is known about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Full container id.
    pub id: Option<String>,
    /// Name without Docker's leading `/`.
    pub name: Option<String>,
    /// Image reference without the tag (`registry/repo`).
    pub image_name: Option<String>,
    /// Image tag (or digest).
    pub image_tag: Option<String>,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
    /// `docker`, `containerd`, `cri-o`.
    pub runtime: Option<String>,
    /// Pod namespace.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod_name: Option<String>,
    /// Pod uid.
    pub pod_uid: Option<String>,
    /// Container name inside the pod.
    pub k8s_container: Option<String>,
}

/// Splits `registry:5000/repo/name:tag` or `name@sha256:...` into name and tag.
pub fn split_image(image: &str) -> (String, Option<String>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_string(), Some(digest.to_string()));
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(colon) => (
            image[..slash + colon].to_string(),
            Some(image[slash + colon + 1..].to_string()),
        ),
        None => (image.to_string(), None),
    }
}

fn string_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Reads `docker inspect` output or a `config.v2.json` file.
pub fn from_inspect(value: &Value) -> ContainerMeta {
    let mut meta = ContainerMeta {
        id: string_at(value, &["Id"])
            .or_else(|| string_at(value, &["ID"]))
            .map(str::to_string),
        name: string_at(value, &["Name"]).map(|n| n.trim_start_matches('/').to_string()),
        runtime: Some("docker".to_string()),
        ..ContainerMeta::default()
    };
    if let Some(image) = string_at(value, &["Config", "Image"]) {
        let (name, tag) = split_image(image);
        meta.image_name = Some(name);
        meta.image_tag = tag;
    }
    if let Some(labels) = value
        .get("Config")
        .and_then(|c| c.get("Labels"))
        .and_then(Value::as_object)
    {
        for (key, label) in labels {
            if let Some(text) = label.as_str() {
                meta.labels.insert(key.clone(), text.to_string());
            }
        }
    }
    let label = |key: &str| meta.labels.get(key).cloned();
    meta.namespace = label("io.kubernetes.pod.namespace");
    meta.pod_name = label("io.kubernetes.pod.name");
    meta.pod_uid = label("io.kubernetes.pod.uid");
    meta.k8s_container = label("io.kubernetes.container.name");
    meta
}

/// Reads a Docker container's metadata from `<root>/containers/<id>/config.v2.json`.
pub fn from_docker_root(docker_root: &Path, id: &str) -> Option<ContainerMeta> {
    let dir = docker_root.join("containers").join(id);
    let bytes = std::fs::read(dir.join("config.v2.json")).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let mut meta = from_inspect(&value);
    meta.id.get_or_insert_with(|| id.to_string());
    Some(meta)
}

/// Reads pod identity from a CRI log path under `/var/log/pods`.
pub fn from_cri_path(path: &Path) -> Option<ContainerMeta> {
    let container = path.parent()?;
    let pod_dir = container.parent()?.file_name()?.to_str()?;
    let mut parts = pod_dir.splitn(3, '_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    let name = container.file_name()?.to_str()?.to_string();
    Some(ContainerMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.to_string()),
        pod_name: Some(pod.to_string()),
        pod_uid: Some(uid.to_string()),
        k8s_container: Some(name),
        ..ContainerMeta::default()
    })
}

/// The container id in a `/var/log/containers/<pod>_<ns>_<container>-<id>.log` name.
pub fn id_from_containers_link(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".log")?;
    let (_, id) = stem.rsplit_once('-')?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

impl ContainerMeta {
    /// Writes the known fields into an event object.
    pub fn apply(&self, event: &mut Map<String, Value>) {
        let mut container = Map::new();
        let put = |map: &mut Map<String, Value>, key: &str, value: &Option<String>| {
            if let Some(value) = value {
                map.insert(key.to_string(), json!(value));
            }
        };
        put(&mut container, "id", &self.id);
        put(&mut container, "name", &self.name);
        put(&mut container, "runtime", &self.runtime);
        let mut image = Map::new();
        put(&mut image, "name", &self.image_name);
        put(&mut image, "tag", &self.image_tag);
        if !image.is_empty() {
            container.insert("image".into(), Value::Object(image));
        }
        if !self.labels.is_empty() {
            // Dots in label keys would read as nesting; ECS keeps them flat under labels.
            let labels: Map<String, Value> = self
                .labels
                .iter()
                .map(|(k, v)| (k.replace('.', "_"), json!(v)))
                .collect();
            container.insert("labels".into(), Value::Object(labels));
        }
        if !container.is_empty() {
            merge(event, "container", container);
        }
        let mut k8s = Map::new();
        put(&mut k8s, "namespace", &self.namespace);
        let mut pod = Map::new();
        put(&mut pod, "name", &self.pod_name);
        put(&mut pod, "uid", &self.pod_uid);
        if !pod.is_empty() {
            k8s.insert("pod".into(), Value::Object(pod));
        }
        if let Some(name) = &self.k8s_container {
            k8s.insert("container".into(), json!({ "name": name }));
        }
        if !k8s.is_empty() {
            merge(event, "kubernetes", k8s);
        }
    }
}

fn merge(event: &mut Map<String, Value>, key: &str, add: Map<String, Value>) {
    match event.get_mut(key) {
        Some(Value::Object(existing)) => {
            for (k, v) in add {
                existing.entry(k).or_insert(v);
            }
        }
        _ => {
            event.insert(key.to_string(), Value::Object(add));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_image("registry:5000/team/app:1.2"),
            ("registry:5000/team/app".into(), Some("1.2".into()))
        );
        assert_eq!(split_image("busybox"), ("busybox".into(), None));
        assert_eq!(
            split_image("app@sha256:abc"),
            ("app".into(), Some("sha256:abc".into()))
        );
    }

    #[test]
    fn inspect_shape_with_kubernetes_labels() {
        let value = json!({
            "ID": "abc", "Name": "/web",
            "Config": {"Image": "nginx:1.25", "Labels": {
                "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.name": "web-1",
                "io.kubernetes.container.name": "nginx", "team": "a"}}
        });
        let meta = from_inspect(&value);
        let mut event = Map::new();
        meta.apply(&mut event);
        let event = Value::Object(event);
        assert_eq!(event["container"]["id"], "abc");
        assert_eq!(event["container"]["name"], "web");
        assert_eq!(event["container"]["image"]["tag"], "1.25");
        assert_eq!(event["container"]["labels"]["team"], "a");
        assert_eq!(event["kubernetes"]["namespace"], "prod");
        assert_eq!(event["kubernetes"]["pod"]["name"], "web-1");
        assert_eq!(event["kubernetes"]["container"]["name"], "nginx");
    }

    #[test]
    fn cri_paths_and_links() {
        let meta = from_cri_path(Path::new(
            "/var/log/pods/kube-system_coredns-5d_0f1e-22/coredns/3.log",
        ))
        .expect("cri path");
        assert_eq!(meta.namespace.as_deref(), Some("kube-system"));
        assert_eq!(meta.pod_name.as_deref(), Some("coredns-5d"));
        assert_eq!(meta.pod_uid.as_deref(), Some("0f1e-22"));
        assert_eq!(meta.k8s_container.as_deref(), Some("coredns"));
        let id = "a".repeat(64);
        assert_eq!(
            id_from_containers_link(&format!("coredns-5d_kube-system_coredns-{id}.log")),
            Some(id.as_str())
        );
        assert_eq!(id_from_containers_link("x-short.log"), None);
    }
}
