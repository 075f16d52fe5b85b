package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/mcp"
)

// orchestrator is the in-memory BDUF state: projects with their requirements and tasks.
type orchestrator struct {
	mu       sync.Mutex
	next     int
	projects map[string]*project
}

type project struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	OrgID        string    `json:"org_id"`
	OwnerID      string    `json:"owner_id"`
	CreatedAt    time.Time `json:"created_at"`
	Requirements []string  `json:"requirements"`
	Tasks        []string  `json:"tasks"`
}

func newOrchestrator() *orchestrator { return &orchestrator{projects: map[string]*project{}} }

func (o *orchestrator) tools() []server.ServerTool {
	name := mcpgo.WithString("name", mcpgo.Required(), mcpgo.Description("Project name."), mcpgo.MaxLength(200))
	pid := mcpgo.WithString("project_id", mcpgo.Required(), mcpgo.Description("Project id."), mcpgo.MaxLength(64))
	text := mcpgo.WithString("text", mcpgo.Required(), mcpgo.Description("Text."), mcpgo.MaxLength(4000))
	return []server.ServerTool{
		{Tool: mcpgo.NewTool("projects_list", mcpgo.WithDescription("List the projects of your organization (projects:read)."),
			mcpgo.WithReadOnlyHintAnnotation(true)), Handler: o.list},
		{Tool: mcpgo.NewTool("projects_create", mcpgo.WithDescription("Create a project (projects:write)."), name), Handler: o.create},
		{Tool: mcpgo.NewTool("projects_delete", mcpgo.WithDescription("Delete a project (projects:delete)."), pid,
			mcpgo.WithDestructiveHintAnnotation(true)), Handler: o.delete},
		{Tool: mcpgo.NewTool("requirements_write", mcpgo.WithDescription("Add a requirement to a project (requirements:write)."), pid, text),
			Handler: o.appendTo(func(p *project, t string) { p.Requirements = append(p.Requirements, t) })},
		{Tool: mcpgo.NewTool("analyses_read", mcpgo.WithDescription("Read the analysis of a project: its requirement and task counts (analyses:read)."), pid,
			mcpgo.WithReadOnlyHintAnnotation(true)), Handler: o.analysis},
		{Tool: mcpgo.NewTool("tasks_write", mcpgo.WithDescription("Add a task to a project (tasks:write)."), pid, text),
			Handler: o.appendTo(func(p *project, t string) { p.Tasks = append(p.Tasks, t) })},
	}
}

// The guard has authorized the call before any handler runs; the handlers use the identity it
// leaves in the context for ownership and organization.

func result(v any) (*mcpgo.CallToolResult, error) {
	b, _ := json.Marshal(v)
	var structured map[string]any
	_ = json.Unmarshal(b, &structured)
	return mcpgo.NewToolResultStructured(structured, string(b)), nil
}

// invalid is the error model's INVALID_ARGUMENT naming the argument (as mcpauth's tools answer).
func invalid(field string) (*mcpgo.CallToolResult, error) {
	return mcp.ErrorResult(apierr.Field(field, "is required and must be a non-empty string")), nil
}

func notFound(what string) (*mcpgo.CallToolResult, error) {
	return mcp.ErrorResult(apierr.New(apierr.NotFound, what+" not found")), nil
}

func (o *orchestrator) list(ctx context.Context, _ mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	id, _ := mcp.IdentityFrom(ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []*project{}
	for _, p := range o.projects {
		if p.OrgID == id.OrgID {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return result(map[string]any{"projects": out})
}

func (o *orchestrator) create(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	id, _ := mcp.IdentityFrom(ctx)
	name, err := req.RequireString("name")
	if err != nil || name == "" {
		return invalid("name")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	p := &project{ID: fmt.Sprintf("prj_%d", o.next), Name: name, OrgID: id.OrgID, OwnerID: id.UserID,
		CreatedAt: time.Now().UTC(), Requirements: []string{}, Tasks: []string{}}
	o.projects[p.ID] = p
	return result(map[string]any{"project": p})
}

// find returns a project of the caller's organization (others' do not exist for it).
func (o *orchestrator) find(ctx context.Context, req mcpgo.CallToolRequest) (*project, bool) {
	id, _ := mcp.IdentityFrom(ctx)
	p, ok := o.projects[req.GetString("project_id", "")]
	return p, ok && p.OrgID == id.OrgID
}

func (o *orchestrator) delete(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.find(ctx, req)
	if !ok {
		return notFound("project")
	}
	delete(o.projects, p.ID)
	return result(map[string]any{"deleted": true, "id": p.ID})
}

func (o *orchestrator) appendTo(add func(p *project, text string)) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		text, err := req.RequireString("text")
		if err != nil || text == "" {
			return invalid("text")
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		p, ok := o.find(ctx, req)
		if !ok {
			return notFound("project")
		}
		add(p, text)
		return result(map[string]any{"project": p})
	}
}

func (o *orchestrator) analysis(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.find(ctx, req)
	if !ok {
		return notFound("project")
	}
	return result(map[string]any{"project_id": p.ID, "requirements": len(p.Requirements), "tasks": len(p.Tasks)})
}
