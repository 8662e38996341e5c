/// One (entity, from, to) group that a command changed, for analytics (contract: "Transition event").
public struct TransitionEvent: Sendable, Encodable {
    public var eventID: String
    public var commandID: String
    public var arrayID: Int64
    public var batchNumber: Int32?
    public var entity: String
    /// `null` when the rows were created (new task instances).
    public var from: String?
    public var to: String
    public var ids: [Int64]
    /// Ids in this event (this part): summing `count` per (from, to) counts every row once.
    public var count: Int
    public var at: String
    public var part: Int?
    public var parts: Int?

    public init(
        eventID: String, commandID: String, arrayID: Int64, batchNumber: Int32?, entity: String, from: String?, to: String,
        ids: [Int64], count: Int, at: String, part: Int? = nil, parts: Int? = nil
    ) {
        self.eventID = eventID
        self.commandID = commandID
        self.arrayID = arrayID
        self.batchNumber = batchNumber
        self.entity = entity
        self.from = from
        self.to = to
        self.ids = ids
        self.count = count
        self.at = at
        self.part = part
        self.parts = parts
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", commandID = "command_id", arrayID = "array_id", batchNumber = "batch_number"
        case entity, from, to, ids, count, at, part, parts
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(eventID, forKey: .eventID)
        try c.encode(commandID, forKey: .commandID)
        try c.encode(arrayID, forKey: .arrayID)
        try c.encode(batchNumber, forKey: .batchNumber)  // explicit null: a task transition has no batch
        try c.encode(entity, forKey: .entity)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encode(ids, forKey: .ids)
        try c.encode(count, forKey: .count)
        try c.encode(at, forKey: .at)
        try c.encodeIfPresent(part, forKey: .part)
        try c.encodeIfPresent(parts, forKey: .parts)
    }
}
