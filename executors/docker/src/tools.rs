//! What `remotemedia docker ls` and `remotemedia docker prune` do.

use crate::container::RUNTIME_LABEL;
use crate::image::MANAGED_LABEL;
use crate::DockerBackend;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use std::collections::HashMap;

/// One image or container of this backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Image tag or container name.
    pub name: String,
    /// Size (images), state and owner (containers), in words.
    pub detail: String,
}

/// The backend's images and containers.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Base and node images.
    pub images: Vec<Listed>,
    /// Containers, running or stopped.
    pub containers: Vec<Listed>,
}

fn managed_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{MANAGED_LABEL}=true")])])
}

/// The images this backend made.
async fn managed_images(
    docker: &bollard::Docker,
) -> Result<Vec<bollard::models::ImageSummary>, String> {
    let filters = managed_filter();
    docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| format!("cannot list images: {e}"))
}

impl DockerBackend {
    /// Every image and container this backend made, on this engine.
    pub async fn list(&self) -> Result<Listing, String> {
        let docker = self.docker().await?;
        let filters = managed_filter();
        let images = managed_images(&docker).await?;
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| format!("cannot list containers: {e}"))?;
        let mut listing = Listing::default();
        for image in images {
            let name = image
                .repo_tags
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone());
            listing.images.push(Listed {
                name,
                detail: format!("{:.0} MB", image.size as f64 / 1e6),
            });
        }
        for container in containers {
            let name = container
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            let runtime = container
                .labels
                .as_ref()
                .and_then(|l| l.get(RUNTIME_LABEL).cloned())
                .unwrap_or_default();
            listing.containers.push(Listed {
                name,
                detail: format!(
                    "{} (runtime {runtime}), image {}",
                    container.status.unwrap_or_default(),
                    container.image.unwrap_or_default()
                ),
            });
        }
        listing.images.sort_by(|a, b| a.name.cmp(&b.name));
        listing.containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    /// Removes the containers no running runtime uses and, with `images`, every image of
    /// this backend no container uses (they are rebuilt on demand). Returns what it
    /// removed.
    pub async fn prune(&self, images: bool) -> Result<Vec<String>, String> {
        let mut removed: Vec<String> = self
            .containers()
            .await?
            .prune()
            .await?
            .into_iter()
            .map(|name| format!("container {name}"))
            .collect();
        if images {
            let docker = self.docker().await?;
            // Node images first: base images are their parents.
            let mut listed = managed_images(&docker).await?;
            listed.sort_by_key(|i| {
                i.repo_tags
                    .iter()
                    .any(|t| t.starts_with("remotemedia-python:"))
            });
            for image in listed {
                let name = image
                    .repo_tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| image.id.clone());
                match docker
                    .remove_image(
                        &image.id,
                        Some(RemoveImageOptionsBuilder::default().build()),
                        None,
                    )
                    .await
                {
                    Ok(_) => removed.push(format!("image {name}")),
                    Err(e) => tracing::info!(image = %name, "kept: {e}"),
                }
            }
        }
        Ok(removed)
    }

    /// Stops and removes every container of this runtime (at exit; idle ones would stop
    /// after their grace period, and all of them when the runtime's process ends).
    pub async fn shutdown(&self) {
        if let Ok(containers) = self.containers_if_connected() {
            containers.retire_all().await;
        }
    }
}
