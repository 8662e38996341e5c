// arrayfsm — the command line: argument parsing and wiring of the modules; no logic of its own.
import ArgumentParser
import Logging

/// `--log-level`, shared by the tools: the flag, else `ARRAYFSM_LOG_LEVEL`, else the tool's default.
struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error (env ARRAYFSM_LOG_LEVEL)") var logLevel: String?

    /// A logger labelled `label` at the level given, else the environment's, else `defaultLevel`.
    func logger(_ label: String, default defaultLevel: String = "warning") -> Logger {
        Environment.logger(label, level: Environment.value(logLevel, "ARRAYFSM_LOG_LEVEL") ?? defaultLevel)
    }
}
