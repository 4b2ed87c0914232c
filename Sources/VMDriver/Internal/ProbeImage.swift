enum ProbeImage { static let bytes: [UInt8] = [] }
