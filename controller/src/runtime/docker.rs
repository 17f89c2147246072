//! Docker and Podman through the Docker Engine API (bollard). (To be implemented.)
