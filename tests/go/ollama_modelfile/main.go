// Reads a Modelfile the way Ollama does and renders its TEMPLATE the way Ollama renders prompts, so the tests can
// check an exported Modelfile with a real Go text/template engine. Ollama executes a template that uses .Messages
// once, over the conversation with consecutive same-role messages joined by a blank line and every system message
// also joined into .System; a Modelfile's SYSTEM is a system message placed first when the conversation has none.
//
// Input on stdin: {"modelfile": "...", "conversations": [[{"role": ..., "content": ...}, ...], ...]}
// Output on stdout: {"from": ..., "template": ..., "system": ..., "parameters": {"stop": [...], ...}, "prompts": [...]}
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Input struct {
	Modelfile     string      `json:"modelfile"`
	Conversations [][]Message `json:"conversations"`
}

type Output struct {
	From       string              `json:"from"`
	Template   string              `json:"template"`
	System     string              `json:"system"`
	Parameters map[string][]string `json:"parameters"`
	Prompts    []string            `json:"prompts"`
}

// parse reads the Modelfile commands: a keyword, then a value that is either triple-quoted (newlines kept), quoted,
// or the rest of the line; PARAMETER values are a name and a value.
func parse(text string) (Output, error) {
	out := Output{Parameters: map[string][]string{}}
	rest := text
	for strings.TrimSpace(rest) != "" {
		rest = strings.TrimLeft(rest, " \t\r\n")
		if strings.HasPrefix(rest, "#") {
			rest = afterLine(rest)
			continue
		}
		word := rest[:strings.IndexAny(rest+" ", " \t")]
		rest = strings.TrimLeft(rest[len(word):], " \t")
		name := ""
		if strings.EqualFold(word, "PARAMETER") {
			name = rest[:strings.IndexAny(rest+" ", " \t")]
			rest = strings.TrimLeft(rest[len(name):], " \t")
		}
		value, remaining, err := readValue(rest)
		if err != nil {
			return out, fmt.Errorf("%s: %w", word, err)
		}
		rest = remaining
		switch strings.ToUpper(word) {
		case "FROM":
			out.From = value
		case "TEMPLATE":
			out.Template = value
		case "SYSTEM":
			out.System = value
		case "PARAMETER":
			out.Parameters[name] = append(out.Parameters[name], value)
		default:
			return out, fmt.Errorf("unknown command %q", word)
		}
	}
	return out, nil
}

func afterLine(s string) string {
	if i := strings.Index(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return ""
}

func readValue(s string) (string, string, error) {
	if strings.HasPrefix(s, `"""`) {
		end := strings.Index(s[3:], `"""`)
		if end < 0 {
			return "", "", fmt.Errorf("unterminated triple quote")
		}
		return s[3 : 3+end], s[3+end+3:], nil
	}
	line, rest := s, ""
	if i := strings.Index(s, "\n"); i >= 0 {
		line, rest = s[:i], s[i+1:]
	}
	line = strings.TrimRight(line, " \t\r")
	if strings.HasPrefix(line, `"`) {
		var value string
		if err := json.Unmarshal([]byte(line), &value); err != nil {
			return "", "", fmt.Errorf("bad quoted value %s: %w", line, err)
		}
		return value, rest, nil
	}
	return line, rest, nil
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

func render(tmpl *template.Template, system string, conversation []Message) (string, error) {
	if system != "" && (len(conversation) == 0 || conversation[0].Role != "system") {
		conversation = append([]Message{{Role: "system", Content: system}}, conversation...)
	}
	joined, messages := collate(conversation)
	var b bytes.Buffer
	err := tmpl.Execute(&b, map[string]any{"System": joined, "Messages": messages, "Tools": nil, "Response": ""})
	return b.String(), err
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
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(out.Template)
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
