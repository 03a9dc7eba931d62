// Package all links every built-in connector into the binary. Import it for its side effects.
package all

import ()
