//go:build !linux

package cli

// fdIsTerminal reports false off Linux: --progress=always draws the line there.
func fdIsTerminal(uintptr) bool { return false }

// fdColumns assumes 80 columns off Linux.
func fdColumns(uintptr) int { return 80 }
