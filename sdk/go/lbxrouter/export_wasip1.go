//go:build wasip1

package lbxrouter

// The contract's exports (interface lbx:router/router@0.2.0), each lifting its arguments,
// calling the plugin's Router and lowering the answer, as the canonical ABI lays them out.

var (
	router      Router
	signalNames []string
)

// init's result<features, string>: a u8 case at 0, then the flags (u8) or the message at 4.
var initResult [3]uint32

//go:wasmexport lbx:router/router@0.2.0#init
func exportInit(configPtr, configLen uint32) uint32 {
	callStarts()
	config := loadString(configPtr, configLen)
	callDone()
	at := addressOf(&initResult)
	if newRouter == nil {
		return initError(at, "the plugin never called lbxrouter.Export")
	}
	// The marker's last byte, which the adapter's allocator never writes: checking it also
	// keeps the array linked in (no other Go code reads it).
	if adapterMemory[15] != 1 {
		return initError(at, "the WASI adapter's memory was overwritten")
	}
	router = newRouter()
	features, err := router.Init(config)
	if err != nil {
		return initError(at, err.Error())
	}
	storeU8(at, 0)
	storeU8(at+4, uint8(features))
	return at
}

func initError(at uint32, message string) uint32 {
	storeU8(at, 1)
	ptr, length := lowerString(message)
	storeU32(at+4, ptr)
	storeU32(at+8, length)
	return at
}

//go:wasmexport lbx:router/router@0.2.0#backends-changed
func exportBackendsChanged(backendsPtr, backendsLen, signalsPtr, signalsLen uint32) {
	callStarts()
	backends := make([]BackendInfo, backendsLen)
	for i := range backends {
		// backend-info: id (0), address (8), weight (16), labels (20): 28 bytes.
		at := backendsPtr + uint32(i)*28
		labels := map[string]string{}
		labelsPtr, labelsLen := loadU32(at+20), loadU32(at+24)
		for k := uint32(0); k < labelsLen; k++ {
			pair := labelsPtr + k*16
			labels[loadString(loadU32(pair), loadU32(pair+4))] = loadString(loadU32(pair+8), loadU32(pair+12))
		}
		backends[i] = BackendInfo{
			ID:      loadString(loadU32(at), loadU32(at+4)),
			Address: loadString(loadU32(at+8), loadU32(at+12)),
			Weight:  loadU32(at + 16),
			Labels:  labels,
		}
	}
	names := make([]string, signalsLen)
	for i := range names {
		at := signalsPtr + uint32(i)*8
		names[i] = loadString(loadU32(at), loadU32(at+4))
	}
	callDone()
	signalNames = names
	router.BackendsChanged(backends, names)
}

// decision: a u8 case at 0, the payload at 8 (80 bytes, 8-aligned for pick-options' u64 tag).
var decisionResult [10]uint64

//go:wasmexport lbx:router/router@0.2.0#choose
func exportChoose(request, statsPtr, statsLen, signalsSome, signalsPtr, signalsLen, retrySome, attempt, triedPtr, triedLen uint32) uint32 {
	callStarts()
	backends := NewBackends(viewU32s(statsPtr, statsLen), viewF64s(signalsPtr, signalsLen), signalsSome != 0, signalNames)
	retry := RetryContext{}
	if retrySome != 0 {
		retry = RetryContext{Attempt: attempt, Tried: viewU32s(triedPtr, triedLen)}
	}
	decision := router.Choose(hostRequest(request), backends, retry)
	// The borrowed request must be given back before choose returns.
	dropRequest(request)
	callDone()
	return lowerDecision(decision)
}

func lowerDecision(d Decision) uint32 {
	decisionResult = [10]uint64{}
	at := addressOf(&decisionResult)
	switch d.kind {
	case kindPick:
		storeU8(at, 0)
		p := d.pick
		storeU32(at+8, p.Backend)
		ptr, length := lowerHeaders(p.UpstreamHeaders)
		storeU32(at+12, ptr)
		storeU32(at+16, length)
		ptr, length = lowerHeaders(p.DownstreamHeaders)
		storeU32(at+20, ptr)
		storeU32(at+24, length)
		if o := p.Options; o != nil {
			storeU8(at+32, 1)
			ptr, length = lowerU32s(o.Fallbacks)
			storeU32(at+40, ptr)
			storeU32(at+44, length)
			ptr, length = lowerU16s(o.RetryOn)
			storeU32(at+48, ptr)
			storeU32(at+52, length)
			if o.Rewrite != nil {
				storeU8(at+56, 1)
				ptr, length = lowerString(*o.Rewrite)
				storeU32(at+60, ptr)
				storeU32(at+64, length)
			}
			storeU64(at+72, o.Tag)
		}
	case kindReject:
		storeU8(at, 1)
		storeU16(at+8, d.rejection.Status)
		ptr, length := lowerHeaders(d.rejection.Headers)
		storeU32(at+12, ptr)
		storeU32(at+16, length)
	default:
		storeU8(at, 2)
	}
	return at
}

//go:wasmexport lbx:router/router@0.2.0#on-outcome
func exportOnOutcome(backend, statusSome, status, faultSome, fault, ttfbSome uint32, ttfb uint64, firstByteSome uint32, firstByte, total, bytesUp, bytesDown uint64, attempt uint32, tag uint64) {
	callStarts()
	router.OnOutcome(Outcome{
		Backend: backend, Status: uint16(status), HasStatus: statusSome != 0,
		Fault: Fault(fault), HasFault: faultSome != 0,
		TTFBUs: ttfb, HasTTFB: ttfbSome != 0, FirstByteUs: firstByte, HasFirstByte: firstByteSome != 0,
		TotalUs: total, BytesUp: bytesUp, BytesDown: bytesDown, Attempt: attempt, Tag: tag,
	})
}
