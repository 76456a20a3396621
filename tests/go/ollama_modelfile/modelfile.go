// The Modelfile reader: the rules of Ollama's parser (parser/parser.go, ParseFile and unquote), written out as a
// small state machine.
//
//   - A command is a word of letters, one of Ollama's commands in any case, then a space or tab; PARAMETER and
//     MESSAGE take one more word (a name of letters, digits and underscores; a role) before their value.
//   - A value runs to the first line end at which the text so far, less surrounding whitespace, is whole: either
//     not quoted, or quoted and closed by the same quote ("""…""" or "…"). A quoted value keeps its line ends and
//     its inner quotes; nothing is escaped and no escape is read.
//   - Spaces and tabs are kept, line ends only inside an open quote; every other character that is not printable
//     (strconv.IsPrint) is dropped.
//   - A '#' where a command could start comments out the rest of the line.
package main

import (
	"fmt"
	"strconv"
	"strings"
)

type readState int

const (
	betweenCommands readState = iota
	inCommand
	inName
	inValue
	inComment
)

var commands = []string{"from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
	"parameter", "message", "requires"}

type modelfileReader struct {
	state   readState
	word    strings.Builder // the command, or the name after PARAMETER and MESSAGE
	command string
	name    string
	value   strings.Builder
	out     Output
}

func parse(text string) (Output, error) {
	r := &modelfileReader{out: Output{Parameters: map[string][]string{}}}
	line := 1
	for _, c := range strings.TrimPrefix(text, "\ufeff") {
		if err := r.read(c); err != nil {
			return r.out, fmt.Errorf("line %d: %w", line, err)
		}
		if c == '\n' {
			line++
		}
	}
	if err := r.finish(); err != nil {
		return r.out, err
	}
	if r.out.From == "" {
		return r.out, fmt.Errorf("no FROM line")
	}
	return r.out, nil
}

func (r *modelfileReader) read(c rune) error {
	switch r.state {
	case betweenCommands:
		r.startCommand(c)
	case inComment:
		if isLineEnd(c) {
			r.state = betweenCommands
		}
	case inCommand:
		return r.readCommand(c)
	case inName:
		return r.readName(c)
	case inValue:
		r.readValue(c)
	}
	return nil
}

func (r *modelfileReader) startCommand(c rune) {
	switch {
	case c == '#':
		r.state = inComment
	case isBlank(c) || isLineEnd(c):
	default:
		r.word.Reset()
		r.word.WriteRune(c)
		r.state = inCommand
	}
}

func (r *modelfileReader) readCommand(c rune) error {
	if isLetter(c) {
		r.word.WriteRune(c)
		return nil
	}
	r.command = strings.ToLower(r.word.String())
	if !isBlank(c) || !isCommand(r.command) {
		return fmt.Errorf("command must be one of %s, not %q", strings.Join(commands, ", "), r.word.String())
	}
	r.word.Reset()
	r.value.Reset()
	r.state = inValue
	if r.command == "parameter" || r.command == "message" {
		r.state = inName
	}
	return nil
}

func (r *modelfileReader) readName(c rune) error {
	switch {
	case isLetter(c) || (r.command == "parameter" && (c >= '0' && c <= '9' || c == '_')):
		r.word.WriteRune(c)
	case isBlank(c):
		r.name = r.word.String()
		r.state = inValue
	default:
		return fmt.Errorf("unexpected %q in the %s name %q", c, r.command, r.word.String())
	}
	return nil
}

func (r *modelfileReader) readValue(c rune) {
	switch {
	case isLineEnd(c):
		if value, whole := unquoted(r.value.String()); whole {
			r.store(value)
			r.state = betweenCommands
			return
		}
		r.value.WriteRune(c)
	case isBlank(c) || strconv.IsPrint(c):
		r.value.WriteRune(c)
	}
}

func (r *modelfileReader) finish() error {
	switch r.state {
	case betweenCommands, inComment:
		return nil
	case inValue:
		value, whole := unquoted(r.value.String())
		if !whole {
			return fmt.Errorf("unexpected end of the Modelfile in an open quote: %s", r.value.String())
		}
		r.store(value)
		return nil
	}
	return fmt.Errorf("unexpected end of the Modelfile after %q", r.word.String())
}

func (r *modelfileReader) store(value string) {
	switch r.command {
	case "from":
		r.out.From = value
	case "template":
		r.out.Template = value
	case "system":
		r.out.System = value
	case "parameter":
		r.out.Parameters[r.name] = append(r.out.Parameters[r.name], value)
	}
}

// unquoted is the value the text so far holds, and whether it is whole (no quote left open).
func unquoted(text string) (string, bool) {
	s := strings.TrimSpace(text)
	for _, quote := range []string{`"""`, `"`} {
		if strings.HasPrefix(s, quote) {
			whole := len(s) >= 2*len(quote) && strings.HasSuffix(s, quote)
			if !whole {
				return "", false
			}
			return s[len(quote) : len(s)-len(quote)], true
		}
	}
	return s, true
}

func isCommand(word string) bool {
	for _, c := range commands {
		if c == word {
			return true
		}
	}
	return false
}

func isLetter(c rune) bool  { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isBlank(c rune) bool   { return c == ' ' || c == '\t' }
func isLineEnd(c rune) bool { return c == '\n' || c == '\r' }
