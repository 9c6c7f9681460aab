package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// redoclyVersion is the OpenAPI linter the document is checked with,
// installed from npm into .cache/ (never committed).
const redoclyVersion = "2.77.0"

// redoclyConfig is the linter's recommended rule set. The project's API
// document carries no license field: no license has been chosen for it.
const redoclyConfig = `extends:
  - recommended
rules:
  info-license: off
`

// TestOpenAPIDocumentLints checks the served OpenAPI document with an
// independent linter (Redocly CLI, recommended rules): valid OpenAPI 3.1,
// no unknown keywords, every schema and tag described and used.
func TestOpenAPIDocumentLints(t *testing.T) {
	modules := npmModules(t, "redocly", "@redocly/cli", redoclyVersion)
	e := startAPI(t, map[string]string{"1001": "alice-1001"})
	_, doc := e.raw("GET", "/api/v1/openapi.json", "", nil)
	dir := t.TempDir()
	docPath, cfgPath := filepath.Join(dir, "openapi.json"), filepath.Join(dir, "redocly.yaml")
	if err := os.WriteFile(docPath, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(redoclyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(modules, ".bin", "redocly"), "lint", "--config", cfgPath, "--format", "json", docPath)
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var report struct {
		Totals   struct{ Errors, Warnings int }
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string
			Message  string
			Location []struct{ Pointer string }
		}
	}
	if jerr := json.Unmarshal(out, &report); jerr != nil {
		t.Fatalf("redocly lint: %v, %v\n%s\n%s", err, jerr, out, stderr.Bytes())
	}
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if err != nil || report.Totals.Errors+report.Totals.Warnings > 0 {
		t.Fatalf("redocly lint: %v, %d errors, %d warnings", err, report.Totals.Errors, report.Totals.Warnings)
	}
}
