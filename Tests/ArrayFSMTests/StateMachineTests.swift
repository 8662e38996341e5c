import ArrayFSM
import Testing

@Suite struct StateMachineTests {
    @Test func everyOperationTransitionIsLegal() {
        // The transitions the operations write, as encoded in their SQL.
        let taskInstance: [Transition<TaskInstanceStatus>] = [
            .init(from: .queued, to: .instantiated),  // instantiate_array_batch
            .init(from: .instantiated, to: .launched),  // transition_array_to_launched
            .init(from: .killSelf, to: .errorFatal),  // transition_to_killed
            .init(from: .instantiated, to: .noDistributorID),  // log_array_submit_failed
        ]
        let task: [Transition<TaskStatus>] = [
            .init(from: .registering, to: .queued), .init(from: .adjustingResources, to: .queued),  // record_array_batch_num
            .init(from: .queued, to: .instantiating),
            .init(from: .instantiating, to: .launched),
            .init(from: .launched, to: .errorFatal), .init(from: .running, to: .errorFatal),  // the kill override
        ]
        #expect(taskInstance.allSatisfy(StateMachine.isLegal))
        #expect(task.allSatisfy(StateMachine.isLegal))
    }

    @Test func illegalTransitionsAreRejected() {
        #expect(!StateMachine.isLegal(Transition<TaskInstanceStatus>(from: .done, to: .launched)))
        #expect(!StateMachine.isLegal(Transition<TaskStatus>(from: .done, to: .queued)))
        #expect(!StateMachine.isLegal(Transition<TaskStatus>(from: .queued, to: .errorFatal)))
    }

    @Test func codesAreJobmons() {
        #expect(TaskInstanceStatus.allCases.map(\.rawValue).joined() == "QIORDEFKTUWXZ")
        #expect(TaskStatus.allCases.map(\.rawValue).joined() == "GQIORDEAF")
    }
}
