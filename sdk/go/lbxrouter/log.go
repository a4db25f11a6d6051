package lbxrouter

// LogLevel is the level of a line a plugin logs through lbx.
type LogLevel uint8

const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
)
