// Reads a Modelfile the way Ollama does and renders its TEMPLATE the way Ollama renders prompts, so the tests can
// check an exported Modelfile with a real Go text/template engine. Ollama executes a template that uses .Messages
// once, over the conversation with consecutive same-role messages joined by a blank line and every system message
// also joined into .System; a Modelfile's SYSTEM is a system message placed first when the conversation has none.
// The template sees the functions Ollama's template package adds (funcs below); the clock they read can be fixed.
//
// Input on stdin: {"modelfile": "...", "conversations": [[{"role": ..., "content": ...}, ...], ...],
// "today": "YYYY-MM-DD" (optional: the day the template's date functions see)}
// Output on stdout: {"from": ..., "template": ..., "system": ..., "parameters": {"stop": [...], ...}, "prompts": [...]}
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"time"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Input struct {
	Modelfile     string      `json:"modelfile"`
	Conversations [][]Message `json:"conversations"`
	Today         string      `json:"today"`
}

type Output struct {
	From       string              `json:"from"`
	Template   string              `json:"template"`
	System     string              `json:"system"`
	Parameters map[string][]string `json:"parameters"`
	Prompts    []string            `json:"prompts"`
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(err)
	}
	out, err := parse(in.Modelfile)
	if err != nil {
		fail(err)
	}
	if !strings.Contains(out.Template, ".Messages") {
		fail(fmt.Errorf("the TEMPLATE does not use .Messages"))
	}
	now, err := clock(in.Today)
	if err != nil {
		fail(err)
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs(now)).Parse(out.Template)
	if err != nil {
		fail(err)
	}
	for _, conversation := range in.Conversations {
		prompt, err := render(tmpl, out.System, conversation)
		if err != nil {
			fail(err)
		}
		out.Prompts = append(out.Prompts, prompt)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// clock is time.Now, or noon of the given day so that tests can render a date of their choosing.
func clock(today string) (func() time.Time, error) {
	if today == "" {
		return time.Now, nil
	}
	day, err := time.ParseInLocation("2006-01-02", today, time.Local)
	if err != nil {
		return nil, err
	}
	return func() time.Time { return day.Add(12 * time.Hour) }, nil
}

// funcs are the functions Ollama's template package (template/template.go) gives every template, each doing what
// Ollama's does: the dates ignore any format argument and are always written YYYY-MM-DD.
func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
		"currentDate": func(args ...string) string {
			return now().Format("2006-01-02")
		},
		"yesterdayDate": func(args ...string) string {
			return now().AddDate(0, 0, -1).Format("2006-01-02")
		},
		// Ollama types a tool's parameter here; these tests pass no tools, and anything else is "any" there too.
		"toTypeScriptType": func(v any) string {
			return "any"
		},
	}
}

func render(tmpl *template.Template, system string, conversation []Message) (string, error) {
	if system != "" && (len(conversation) == 0 || conversation[0].Role != "system") {
		conversation = append([]Message{{Role: "system", Content: system}}, conversation...)
	}
	joined, messages := collate(conversation)
	var b bytes.Buffer
	err := tmpl.Execute(&b, map[string]any{"System": joined, "Messages": messages, "Tools": nil, "Response": ""})
	return b.String(), err
}

func collate(messages []Message) (string, []*Message) {
	var system []string
	var out []*Message
	for i := range messages {
		m := messages[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role && m.Role != "tool" {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &m)
		}
	}
	return strings.Join(system, "\n\n"), out
}
