// Package docker is what plugins share for talking to the Docker Engine:
// a client that negotiates the API version (Engine 20.10 speaks 1.41), finding
// containers by name or by Compose labels, and running commands inside them
// with streams, exit codes and cancellation that reaches the process.
package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// Client wraps the Engine SDK client.
type Client struct {
	*client.Client
}

// New connects to the engine named by DOCKER_HOST (the local socket by default).
func New() (*Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Client{c}, nil
}

// Target names a container: by name or ID, or by Compose project and service.
type Target struct {
	Container      string
	ComposeProject string
	ComposeService string
}

func (t Target) String() string {
	if t.Container != "" {
		return fmt.Sprintf("container %q", t.Container)
	}
	return fmt.Sprintf("compose service %q of project %q", t.ComposeService, t.ComposeProject)
}

// Find returns the container a target names, running or not.
func (c *Client) Find(ctx context.Context, t Target) (container.InspectResponse, error) {
	if t.Container != "" {
		info, err := c.ContainerInspect(ctx, t.Container)
		if errdefs.IsNotFound(err) {
			return info, fmt.Errorf("container %q does not exist", t.Container)
		}
		if err != nil {
			return info, fmt.Errorf("inspect container %q: %w", t.Container, err)
		}
		return info, nil
	}
	f := filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+t.ComposeProject),
		filters.Arg("label", "com.docker.compose.service="+t.ComposeService),
	)
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("list containers of %s: %w", t, err)
	}
	if len(list) == 0 {
		return container.InspectResponse{}, fmt.Errorf("no container found for %s", t)
	}
	// Prefer a running one when Compose scaled the service.
	pick := list[0]
	for _, s := range list {
		if s.State == "running" {
			pick = s
			break
		}
	}
	return c.ContainerInspect(ctx, pick.ID)
}

// FindRunning is Find, with an error when the container is not running.
func (c *Client) FindRunning(ctx context.Context, t Target) (container.InspectResponse, error) {
	info, err := c.Find(ctx, t)
	if err != nil {
		return info, err
	}
	if info.State == nil || !info.State.Running {
		state := "not running"
		if info.State != nil {
			state = info.State.Status
		}
		return info, fmt.Errorf("container %q is %s", strings.TrimPrefix(info.Name, "/"), state)
	}
	return info, nil
}

// IsNotFound reports whether err says an object does not exist.
func IsNotFound(err error) bool { return errdefs.IsNotFound(err) }
