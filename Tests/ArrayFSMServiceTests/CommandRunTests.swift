import ArrayFSM
@testable import ArrayFSMService
import Testing

@Suite struct CommandRunTests {
    func record(_ n: Int, array: Int64, ids: Int) -> CommandBatchProcessor.Decoded {
        let operation = RecordArrayBatchNum(arrayID: array, taskIDs: (1...Int64(ids)).map { $0 + array * 1_000_000 },
                                            taskResourcesID: 1, workflowRunID: 1)
        let command = Command(envelope: CommandEnvelope(commandID: "c-\(n)", type: "record_array_batch_num"),
                              operation: operation)
        return .command(command, IncomingCommand(topic: "t", partition: 0, offset: Int64(n), key: nil, value: [], headers: []))
    }

    func run(_ items: [CommandBatchProcessor.Decoded]) -> [String] {
        guard case .command(let first, let message) = items[0] else { return [] }
        return CommandRun.collect(startingWith: first, message, in: items, from: 1, answered: [:]).commands.map(\.0.envelope.commandID)
    }

    @Test func aRunEndsBeforeItsIDsExceedTheLimit() {
        // 60k ids each: three fit in 200k, the fourth would not.
        let items = (0..<5).map { record($0, array: Int64($0 + 1), ids: 60_000) }
        #expect(run(items) == ["c-0", "c-1", "c-2"])
        // A command larger than the limit still runs, alone.
        #expect(run([record(0, array: 1, ids: 250_000), record(1, array: 2, ids: 10)]) == ["c-0"])
    }

    @Test func aRunEndsAtARepeatedArray() {
        let items = [record(0, array: 1, ids: 10), record(1, array: 2, ids: 10), record(2, array: 1, ids: 10), record(3, array: 3, ids: 10)]
        #expect(run(items) == ["c-0", "c-1"])
    }

    func instantiate(_ n: Int, ids: [Int64]) -> CommandBatchProcessor.Decoded {
        let command = Command(envelope: CommandEnvelope(commandID: "i-\(n)", type: "instantiate_task_instances"),
                              operation: InstantiateTaskInstances(taskInstanceIDs: ids))
        return .command(command, IncomingCommand(topic: "t", partition: 0, offset: Int64(n), key: nil, value: [], headers: []))
    }

    @Test func instantiateTaskInstancesRunsEndAtAnInstanceListedAgain() {
        let items = [instantiate(0, ids: [1, 2]), instantiate(1, ids: [3]), instantiate(2, ids: [4, 2]), instantiate(3, ids: [5])]
        #expect(run(items).map { $0 } == ["i-0", "i-1"])
    }
}
