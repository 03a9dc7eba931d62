// Package protocol is the Go side of the protocol between the Sluice host and its connector
// plugins (version 1, sdk/proto/pluginv1/plugin.proto): the handshake constants, the gRPC codec,
// the packed record batches and the conversions between the connector types of sdk/go/connector
// and the generated messages of package pluginv1. It is the one boundary where protobuf types
// meet connector types, shared by the plugin server (sdk/go/plugin) and the plugin host
// (internal/pluginhost), which live in different modules, hence a public package.
//
// Plugin authors do not use it: package plugin speaks the protocol for them. Its API follows the
// protocol, not the compatibility promise of the connector SDK, and may change with it.
//
// Every function is pure and safe for concurrent use.
package protocol

// Protocol constants shared by plugins and the host.
const (
	// ProtocolVersion is the plugin protocol version this package speaks. The host refuses
	// plugins speaking a version it does not support, naming both.
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue are the handshake that tells a plugin binary it was
	// started by Sluice; run by hand, the binary explains itself and exits.
	MagicCookieKey   = "SLUICE_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "3c0f6a2e-sluice-connector-plugin"
	// PluginName is the name of the gRPC plugin in the go-plugin plugin set.
	PluginName = "connector"
	// MaxMessageBytes bounds one gRPC message in either direction (64 MiB). The host sizes read
	// credits and splits write batches below it.
	MaxMessageBytes = 64 << 20
	// WindowBytes is the HTTP/2 flow-control window of the plugin connection (16 MiB), so a large
	// batch crosses in one go rather than in 64 KiB steps.
	WindowBytes = 16 << 20
)

// FeatureOrderedWrites is the protocol feature (SpecsResponse.features) by which a plugin writes
// batches one at a time in the order of their WriteRequest.write_id, whatever order their calls
// arrive in. The host may then send the next batch before the previous one is answered: its
// transfer and decoding overlap the connector's Write of the one before.
const FeatureOrderedWrites = "ordered-writes"

// FeatureDataConnection is the protocol feature by which a plugin serves the Connector service a
// second time, on a connection the host hands it at start: a stream socket inherited as the file
// descriptor named by the environment variable EnvDataFD, with gRPC over it in plain text. The
// host then sends Read and Write, the calls that carry batches, on that connection and the rest
// on go-plugin's. No other process can reach it (it has no address: only the host and the plugin
// hold it), so it needs neither the mutual TLS of go-plugin's socket nor its cost.
const FeatureDataConnection = "data-connection"

// EnvDataFD names the environment variable through which the host passes the data connection's
// file descriptor to a plugin (FeatureDataConnection). A plugin started without it has none.
const EnvDataFD = "SLUICE_PLUGIN_DATA_FD"
