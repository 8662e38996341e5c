// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "arrayfsm",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "arrayfsm", targets: ["arrayfsm"]),
        .library(name: "ArrayFSM", targets: ["ArrayFSM"]),
        .library(name: "ArrayFSMClient", targets: ["ArrayFSMClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Debian's librdkafka 2.0.2 (pkg-config rdkafka): module map and shim header only.
        .systemLibrary(name: "CRdkafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // A small Swift 6 wrapper over librdkafka: producer, consumer, admin, mock cluster. No arrayfsm words.
        .target(
            name: "Kafka",
            dependencies: ["CRdkafka", .product(name: "Logging", package: "swift-log"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // The domain: statuses, FSM rules, the array operations and their SQL, migrations.
        .target(
            name: "ArrayFSM",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The processor: command batches → one transaction → outbox → relay; Kafka wiring; metrics.
        .target(
            name: "ArrayFSMService",
            dependencies: [
                "ArrayFSM",
                "Kafka",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The schedulers' side: commands sent, typed answers read from a private reply topic.
        // Kafka only: a scheduler links no PostgreSQL driver.
        .target(
            name: "ArrayFSMClient",
            dependencies: [
                "Kafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Load-test tooling: topic dumps (kcat -J format), replay, and what gen/seed/bench build on.
        .target(
            name: "ArrayFSMLoad",
            dependencies: [
                "Kafka",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The developer tools the CLI runs: benchmarks, a throwaway PostgreSQL, the noida broker,
        // child processes, and a serve on a local broker for them (the tests use it too).
        .target(
            name: "ArrayFSMTools",
            dependencies: [
                "ArrayFSM",
                "ArrayFSMClient",
                "ArrayFSMService",
                "ArrayFSMLoad",
                "Kafka",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What only tests import: test databases, row readers, schema checks, a test CA.
        .target(
            name: "ArrayFSMTesting",
            dependencies: [
                "ArrayFSM",
                "ArrayFSMTools",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The fault-injection suite: serve under kills, rebalances, restarts, bad input and lock
        // contention, checked by an oracle against a clean run.
        .target(
            name: "ArrayFSMChaos",
            dependencies: [
                "ArrayFSM",
                "ArrayFSMClient",
                "ArrayFSMService",
                "ArrayFSMLoad",
                "ArrayFSMTools",
                "Kafka",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The command line: argument parsing and wiring only.
        .executableTarget(
            name: "arrayfsm",
            dependencies: [
                "ArrayFSM",
                "ArrayFSMTools",
                "ArrayFSMChaos",
                "ArrayFSMService",
                "ArrayFSMLoad",
                "Kafka",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ArrayFSMTests",
            dependencies: ["ArrayFSM", "ArrayFSMTesting", "ArrayFSMTools"]
        ),
        .testTarget(name: "ArrayFSMServiceTests", dependencies: ["ArrayFSMService", "ArrayFSMTesting", "ArrayFSMTools", "Kafka"]),
        .testTarget(name: "ArrayFSMLoadTests", dependencies: ["ArrayFSMLoad", "ArrayFSMTesting", "ArrayFSMTools", "Kafka"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "ArrayFSMClientTests", dependencies: ["ArrayFSMClient", "ArrayFSMTesting", "ArrayFSMTools", "Kafka"]),
        .testTarget(name: "ArrayFSMChaosTests", dependencies: ["ArrayFSMChaos", "ArrayFSMTesting", "ArrayFSMTools"]),
        // A consumer-group member that KafkaTests starts and kills with SIGKILL.
        .executableTarget(name: "kafka-test-consumer", dependencies: ["Kafka"]),
        // The Kafka-layer benchmark: the wrapper against plain C loops on the same broker, same run.
        .target(name: "CKafkaBench", dependencies: ["CRdkafka"]),
        .executableTarget(name: "kafka-bench", dependencies: ["Kafka", "CKafkaBench"]),
    ]
)
