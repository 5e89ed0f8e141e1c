// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/// @title ParkgateRental (v2): parking-space sharing with verified owners, escrowed bookings and gate records.
/// @notice Lifecycle (see docs/contract.md):
///  1. a VERIFIER attests an owner (`verifyOwner`); unverified (or revoked) owners cannot register spaces
///     or list, and their listings take no bookings; a verifier may cancel any listing;
///  1b. a verified owner registers a space of a lot (`registerSpace`) and a LOT_ADMIN approves it
///     (`approveSpace`) once the bay is shown to be the owner's; only approved spaces are listed and booked,
///     so no owner can sell entry to a lot it holds no bay in (`removeSpace` withdraws an approval);
///  2. a verified owner lists a rental event for one of its approved spaces (`createRentalEvent`);
///  3. the listing emits `FirstAssociation` (space <-> lot address info <-> rental event);
///  4. a renter books a window inside the listing, paying the exact escrow and a vehicle commitment
///     (keyed hash of the plate, never the plate) (`requestRental`);
///  5. the lot's gateway sends ONE entry record per admitted car: the plate it read is checked against the
///     commitment and the booking is checked in at once, emitting `SecondAssociation` (renter's booking <->
///     space <-> address <-> rental event) (`recordGateEvents`, kind CheckIn);
///  6. the exit record (kind CheckOut) closes the visit; `settle` (anyone, batched) pays the owner and
///     refunds the unused escrow through pull payments (`withdraw`); cancellation and expiry rules.
/// Gate records are numbered per gateway (`seq`, strictly increasing); the contract keeps each gateway's
/// high-water mark, so a replayed record is skipped exactly once and no account can pre-empt another's.
contract ParkgateRental is AccessControl, ReentrancyGuard {
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");
    bytes32 public constant LOT_ADMIN_ROLE = keccak256("LOT_ADMIN_ROLE");

    /// @notice The gateway admits a booked car from `start - GRACE_PERIOD` (its `grace_before_s` must not
    /// exceed it); a check-in record stamped earlier is rejected `OutsideWindow`.
    uint64 public constant GRACE_PERIOD = 15 minutes;
    /// @notice A booking can be cancelled (by its renter, or with its listing) only before
    /// `start - CANCEL_CUTOFF`. The cutoff lies 45 minutes before the admission window (`start - GRACE_PERIOD`)
    /// because the gateway learns of a cancellation only after its confirmations (2 blocks) and its next
    /// poll of the chain, and keeps admitting from its cache while the node is slow or unreachable. Were the
    /// cutoff the admission start, a cancel mined just before it would still find the gate open: the car
    /// parks, its check-in is rejected and the renter has the full refund (free parking). 45 minutes cover
    /// minutes of confirmations and polling with a wide margin for a lagging node; a renter still cancels
    /// up to an hour before the booked start.
    uint64 public constant CANCEL_CUTOFF = 1 hours;
    /// @notice Gate record timestamps may be at most this far ahead of the block time (gateway clock skew).
    uint64 public constant MAX_CLOCK_SKEW = 5 minutes;
    /// @notice Gate records about a booking are accepted until `end + RECORD_DEADLINE`; only after it may anyone
    /// expire (refund) or settle (overdue) the booking, so a gateway that was offline cannot lose the race.
    uint64 public constant RECORD_DEADLINE = 1 days;
    /// @notice Shortest booking: filling a listing costs real escrow time, not 32 one-second bookings.
    uint64 public constant MIN_BOOKING = 1 hours;
    /// @notice Live bookings one renter may hold in one listing: one account cannot fill a listing.
    uint256 public constant MAX_BOOKINGS_PER_RENTER = 4;
    /// @notice Bound on live bookings per rental event, so overlap checks and cancellation stay bounded in gas.
    uint256 public constant MAX_ACTIVE_BOOKINGS = 32;
    /// @notice Bound on live rental events per space, for the same reason.
    uint256 public constant MAX_ACTIVE_RENTALS = 32;
    /// @notice Longest rental event window; also keeps `end + RECORD_DEADLINE` far from uint40 overflow.
    uint64 public constant MAX_RENTAL_WINDOW = 366 days;
    /// @notice A booking may start at most this far after the block time. Two weeks cover how parking is
    /// booked (a trip, a fortnight of commuting) while every booking reaches its cancel cutoff within two
    /// weeks: a griefer can no longer park refundable bookings at the far end of a 366-day listing for
    /// months; holding the 32 live slots takes a cancel and a re-book per slot every two weeks, and a
    /// missed cancel costs the escrow. It does not make griefing expensive (see docs/contract.md).
    uint64 public constant MAX_ADVANCE = 14 days;

    enum RecordKind { CheckIn, CheckOut, Denied }
    enum BookingStatus { None, Requested, CheckedIn, CheckedOut, Settled, Cancelled, Expired }
    enum RejectReason {
        None, UnknownBooking, WrongLot, BadState, CommitmentMismatch, OutsideWindow, BadTimestamp, UnknownKind
    }

    struct Lot {
        bool exists;
        uint32 number; // small id stored in every booking (cheaper than the bytes32 lot id)
        string geohash; // address information of the lot: geohash, no personal data
    }

    struct Space {
        bytes32 lotId;
        address owner;
        bool approved; // by a lot admin (`approveSpace`); packed with `owner`
        string location; // level/bay inside the lot, e.g. "L-1/B17"
    }

    struct RentalEvent {
        uint256 spaceId;
        bytes32 lotId;
        address owner;
        uint64 start;
        uint64 end;
        bool cancelled;
        uint256 pricePerHour; // wei per hour, charged per second (rounded up)
    }

    /// @dev Three slots. Slot 0 is all a gate record reads and writes besides the commitment (slot 1).
    struct Booking {
        uint40 start;
        uint40 end;
        uint40 checkInAt;
        uint40 checkOutAt;
        BookingStatus status;
        uint32 lotNumber;
        uint48 rentalId;
        bytes32 vehicleCommitment;
        address renter;
        uint96 escrow;
    }

    /// @notice The unpacked view of a booking (`getBooking`).
    struct BookingView {
        uint256 rentalId;
        address renter;
        uint64 start;
        uint64 end;
        uint64 checkInAt;
        uint64 checkOutAt;
        BookingStatus status;
        bytes32 vehicleCommitment;
        uint256 escrow;
    }

    mapping(address owner => bytes32 attestation) public ownerAttestation;
    mapping(bytes32 lotId => Lot) private _lots;
    mapping(uint32 lotNumber => bytes32 lotId) private _lotIdOf;
    mapping(bytes32 lotId => mapping(address gateway => bool)) public gatewayOf;
    mapping(address gateway => uint256 lots) public gatewayLotCount;
    /// @notice Highest gate record sequence number applied (or rejected) per gateway: a record at or below it
    /// is skipped.
    mapping(address gateway => uint64 seq) public lastSeq;
    mapping(uint256 spaceId => Space) private _spaces;
    mapping(uint256 rentalId => RentalEvent) private _rentals;
    mapping(uint256 bookingId => Booking) private _bookings;
    mapping(address payee => uint256 amount) public pendingWithdrawal;
    mapping(uint256 spaceId => uint256[] rentalIds) private _liveRentals;
    mapping(uint256 rentalId => uint256[] bookingIds) private _liveBookings;
    /// @notice The space registered at `keccak256(bytes(location))` in a lot (0: none): a bay is listed once.
    mapping(bytes32 lotId => mapping(bytes32 locationHash => uint256 spaceId)) public spaceAt;

    uint32 public lotCount;
    uint256 public spaceCount;
    uint256 public rentalCount;
    uint256 public bookingCount;

    event OwnerVerified(address indexed owner, address indexed verifier, bytes32 attestation);
    event OwnerRevoked(address indexed owner, address indexed verifier);
    event LotRegistered(bytes32 indexed lotId, string geohash);
    event GatewaySet(bytes32 indexed lotId, address indexed gateway, bool enabled);
    event SpaceRegistered(uint256 indexed spaceId, bytes32 indexed lotId, address indexed owner, string location);
    event SpaceApproved(uint256 indexed spaceId, bytes32 indexed lotId, address indexed admin);
    event SpaceRemoved(uint256 indexed spaceId, bytes32 indexed lotId, address indexed admin);
    event RentalEventCreated(
        uint256 indexed rentalId, uint256 indexed spaceId, bytes32 indexed lotId,
        address owner, uint64 start, uint64 end, uint256 pricePerHour
    );
    event FirstAssociation(
        uint256 indexed rentalId, uint256 indexed spaceId, bytes32 indexed lotId, string geohash, string location
    );
    event RentalEventCancelled(uint256 indexed rentalId, bytes32 indexed lotId);
    event RentalRequested(
        uint256 indexed bookingId, uint256 indexed rentalId, bytes32 indexed lotId,
        address renter, uint64 start, uint64 end, uint256 escrow, bytes32 vehicleCommitment
    );
    /// @notice The entry record: plate verified against the commitment and checked in at `timestamp`. Together
    /// with `RentalRequested` (renter) and `FirstAssociation` (space, address) of `rentalId` it is the second
    /// association renter <-> space <-> address <-> rental event.
    event SecondAssociation(uint256 indexed bookingId, bytes32 indexed lotId, uint256 rentalId, uint64 timestamp);
    event CheckedOut(uint256 indexed bookingId, bytes32 indexed lotId, uint64 timestamp);
    event GateDenied(
        uint256 indexed bookingId, address indexed gateway, uint64 seq, bytes32 plateCommitment, uint64 timestamp
    );
    event Settled(uint256 indexed bookingId, bytes32 indexed lotId, uint256 toOwner, uint256 refund);
    event BookingCancelled(uint256 indexed bookingId, bytes32 indexed lotId, uint256 refund);
    event BookingExpired(uint256 indexed bookingId, bytes32 indexed lotId, uint256 refund);
    event GateRecordSkipped(address indexed gateway, uint64 seq);
    event GateRecordRejected(address indexed gateway, uint64 seq, uint256 indexed bookingId, RejectReason reason);
    event Withdrawal(address indexed payee, uint256 amount);

    error NotVerifiedOwner(address account);
    error UnknownLot(bytes32 lotId);
    error LotExists(bytes32 lotId);
    error UnknownSpace(uint256 spaceId);
    error NotSpaceOwner(uint256 spaceId, address account);
    error SpaceNotApproved(uint256 spaceId);
    error UnknownRentalEvent(uint256 rentalId);
    error NotRentalOwner(uint256 rentalId, address account);
    error SpaceExists(bytes32 lotId, string location, uint256 spaceId);
    error TooFarAhead(uint64 start, uint64 latest);
    error RentalEventCancelledAlready(uint256 rentalId);
    error InvalidWindow(uint64 start, uint64 end);
    error BookingTooShort(uint64 length, uint64 minimum);
    error OverlappingRentalEvent(uint256 spaceId, uint256 otherRentalId);
    error OverlappingBooking(uint256 rentalId, uint256 otherBookingId);
    error TooManyLive(uint256 id);
    error TooManyBookingsOfRenter(uint256 rentalId, address renter);
    error ZeroPrice();
    error EmptyCommitment();
    error WrongPayment(uint256 expected, uint256 sent);
    error ValueTooLarge(uint256 value);
    error UnknownBooking(uint256 bookingId);
    error NotRenter(uint256 bookingId, address account);
    error BookingNotActive(uint256 bookingId, BookingStatus status);
    error AlreadySettled(uint256 bookingId);
    error TooLateToCancel(uint256 bookingId);
    error NotYetExpired(uint256 bookingId, uint64 expiresAt);
    error HasCheckedInBooking(uint256 rentalId, uint256 bookingId);
    error NotAGateway(address account);
    error MalformedRecords(uint256 words);
    error NothingToWithdraw(address account);
    error EmptyString();

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(LOT_ADMIN_ROLE, admin);
        _grantRole(VERIFIER_ROLE, admin);
    }

    // ---------------------------------------------------------------- step 1: owner verification

    /// @notice Attest `owner` (the attestation is a hash of the verifier's off-chain evidence, no personal data).
    function verifyOwner(address owner, bytes32 attestation) external onlyRole(VERIFIER_ROLE) {
        ownerAttestation[owner] = attestation == bytes32(0) ? bytes32(uint256(1)) : attestation;
        emit OwnerVerified(owner, msg.sender, attestation);
    }

    function revokeOwner(address owner) external onlyRole(VERIFIER_ROLE) {
        delete ownerAttestation[owner];
        emit OwnerRevoked(owner, msg.sender);
    }

    function isVerifiedOwner(address owner) public view returns (bool) {
        return ownerAttestation[owner] != bytes32(0);
    }

    // ---------------------------------------------------------------- lots, gateways, spaces

    function registerLot(bytes32 lotId, string calldata geohash) external onlyRole(LOT_ADMIN_ROLE) {
        if (_lots[lotId].exists) revert LotExists(lotId);
        if (bytes(geohash).length == 0) revert EmptyString();
        uint32 number = ++lotCount;
        _lots[lotId] = Lot({exists: true, number: number, geohash: geohash});
        _lotIdOf[number] = lotId;
        emit LotRegistered(lotId, geohash);
    }

    /// @notice Grant or revoke the per-lot gateway role.
    function setGateway(bytes32 lotId, address gateway, bool enabled) external onlyRole(LOT_ADMIN_ROLE) {
        if (!_lots[lotId].exists) revert UnknownLot(lotId);
        if (gatewayOf[lotId][gateway] == enabled) return;
        gatewayOf[lotId][gateway] = enabled;
        if (enabled) gatewayLotCount[gateway] += 1;
        else gatewayLotCount[gateway] -= 1;
        emit GatewaySet(lotId, gateway, enabled);
    }

    /// @notice Register a space of the sender (a verified owner) at `location` in a lot. A location is
    /// registered once per lot (exact bytes; `SpaceExists` otherwise), so no bay is listed twice. The space
    /// can be listed only once a lot admin has approved it (`approveSpace`): owner verification is global,
    /// and without the approval an owner verified for one lot could sell entry to another.
    function registerSpace(bytes32 lotId, string calldata location) external returns (uint256 spaceId) {
        if (!isVerifiedOwner(msg.sender)) revert NotVerifiedOwner(msg.sender);
        if (!_lots[lotId].exists) revert UnknownLot(lotId);
        if (bytes(location).length == 0) revert EmptyString();
        bytes32 key = keccak256(bytes(location));
        uint256 existing = spaceAt[lotId][key];
        if (existing != 0) revert SpaceExists(lotId, location, existing);
        spaceId = ++spaceCount;
        spaceAt[lotId][key] = spaceId;
        _spaces[spaceId] = Space({lotId: lotId, owner: msg.sender, approved: false, location: location});
        emit SpaceRegistered(spaceId, lotId, msg.sender, location);
    }

    /// @notice A lot admin confirms that space `spaceId` is its owner's bay in its lot: from now on it can be
    /// listed and booked. An approved space holds its location (`spaceAt`): re-approving a removed space
    /// claims its location back, and reverts `SpaceExists` when another space has registered it since.
    function approveSpace(uint256 spaceId) external onlyRole(LOT_ADMIN_ROLE) {
        Space storage space = _spaces[spaceId];
        if (space.owner == address(0)) revert UnknownSpace(spaceId);
        if (space.approved) return; // an approved space holds its location
        bytes32 lotId = space.lotId;
        bytes32 key = keccak256(bytes(space.location));
        uint256 holder = spaceAt[lotId][key];
        if (holder != spaceId) {
            if (holder != 0) revert SpaceExists(lotId, space.location, holder);
            spaceAt[lotId][key] = spaceId;
        }
        space.approved = true;
        emit SpaceApproved(spaceId, lotId, msg.sender);
    }

    /// @notice A lot admin withdraws a space (a wrong or squatted registration, a bay sold): at once it is no
    /// longer approved, so its listings take no new bookings and it cannot be listed again. Bookings already
    /// made stand (a verifier may cancel the listings), so its location stays bound to it while it has a
    /// listing that has not ended: no other space can register the bay and book the same hours. Once its
    /// listings have ended (or are cancelled), calling `removeSpace` again frees the location. Emits
    /// `SpaceRemoved` when it changed something (approval revoked or location freed), nothing otherwise.
    function removeSpace(uint256 spaceId) external onlyRole(LOT_ADMIN_ROLE) {
        Space storage space = _spaces[spaceId];
        if (space.owner == address(0)) revert UnknownSpace(spaceId);
        bool changed = space.approved;
        if (changed) space.approved = false;
        bytes32 key = keccak256(bytes(space.location));
        if (spaceAt[space.lotId][key] == spaceId && !_hasLiveRental(spaceId)) {
            delete spaceAt[space.lotId][key];
            changed = true;
        }
        if (changed) emit SpaceRemoved(spaceId, space.lotId, msg.sender);
    }

    // ---------------------------------------------------------------- steps 2 + 3: rental event, first association

    function createRentalEvent(uint256 spaceId, uint64 start, uint64 end, uint256 pricePerHour)
        external
        returns (uint256 rentalId)
    {
        if (!isVerifiedOwner(msg.sender)) revert NotVerifiedOwner(msg.sender);
        Space storage space = _spaces[spaceId];
        if (space.owner == address(0)) revert UnknownSpace(spaceId);
        if (space.owner != msg.sender) revert NotSpaceOwner(spaceId, msg.sender);
        if (!space.approved) revert SpaceNotApproved(spaceId);
        if (start >= end || start < block.timestamp || end - start > MAX_RENTAL_WINDOW || end >= 2 ** 39) {
            revert InvalidWindow(start, end);
        }
        if (pricePerHour == 0) revert ZeroPrice();
        if (pricePerHour > type(uint96).max) revert ValueTooLarge(pricePerHour);
        _checkNoOverlappingRental(spaceId, start, end);
        rentalId = ++rentalCount;
        _rentals[rentalId] = RentalEvent({
            spaceId: spaceId, lotId: space.lotId, owner: msg.sender, start: start, end: end,
            cancelled: false, pricePerHour: pricePerHour
        });
        _liveRentals[spaceId].push(rentalId);
        emit RentalEventCreated(rentalId, spaceId, space.lotId, msg.sender, start, end, pricePerHour);
        emit FirstAssociation(rentalId, spaceId, space.lotId, _lots[space.lotId].geohash, space.location);
    }

    /// @notice The owner, or a verifier (e.g. for an owner it revoked), withdraws a listing; its live bookings
    /// are refunded in full. A checked-in booking, or one past its cancel cutoff (`start - CANCEL_CUTOFF`:
    /// its car may be admitted before the gateway sees the cancellation), blocks it.
    function cancelRentalEvent(uint256 rentalId) external {
        RentalEvent storage rental = _rentalOf(rentalId);
        if (rental.owner != msg.sender && !hasRole(VERIFIER_ROLE, msg.sender)) {
            revert NotRentalOwner(rentalId, msg.sender);
        }
        if (rental.cancelled) revert RentalEventCancelledAlready(rentalId);
        uint256[] storage live = _liveBookings[rentalId];
        for (uint256 i = 0; i < live.length; i++) {
            Booking storage booking = _bookings[live[i]];
            if (booking.status == BookingStatus.CheckedIn) revert HasCheckedInBooking(rentalId, live[i]);
            if (booking.status == BookingStatus.Requested && _pastCancelCutoff(booking)) {
                revert TooLateToCancel(live[i]);
            }
        }
        while (live.length > 0) {
            uint256 bookingId = live[live.length - 1];
            live.pop();
            Booking storage booking = _bookings[bookingId];
            if (booking.status != BookingStatus.Requested) continue; // closed since (pruned lazily)
            booking.status = BookingStatus.Cancelled;
            _credit(booking.renter, booking.escrow);
            emit BookingCancelled(bookingId, rental.lotId, booking.escrow);
        }
        rental.cancelled = true;
        _removeId(_liveRentals[rental.spaceId], rentalId);
        emit RentalEventCancelled(rentalId, rental.lotId);
    }

    // ---------------------------------------------------------------- step 4: rental request with escrow + commitment

    /// @notice Book [start, end) inside a listing; `msg.value` must equal `quote(rentalId, start, end)`.
    /// At least `MIN_BOOKING` long, starting at most `MAX_ADVANCE` ahead; at most `MAX_BOOKINGS_PER_RENTER`
    /// live bookings per renter and listing. The listing's owner must still be verified and its space still
    /// approved.
    function requestRental(uint256 rentalId, uint64 start, uint64 end, bytes32 vehicleCommitment)
        external
        payable
        nonReentrant
        returns (uint256 bookingId)
    {
        RentalEvent storage rental = _rentalOf(rentalId);
        if (rental.cancelled) revert RentalEventCancelledAlready(rentalId);
        if (!isVerifiedOwner(rental.owner)) revert NotVerifiedOwner(rental.owner);
        if (!_spaces[rental.spaceId].approved) revert SpaceNotApproved(rental.spaceId);
        if (start >= end || start < rental.start || end > rental.end || end <= block.timestamp) {
            revert InvalidWindow(start, end);
        }
        uint64 latest = uint64(block.timestamp) + MAX_ADVANCE;
        if (start > latest) revert TooFarAhead(start, latest);
        if (end - start < MIN_BOOKING) revert BookingTooShort(end - start, MIN_BOOKING);
        if (vehicleCommitment == bytes32(0)) revert EmptyCommitment();
        uint256 escrow = _cost(rental.pricePerHour, end - start);
        if (msg.value != escrow) revert WrongPayment(escrow, msg.value);
        if (escrow > type(uint96).max) revert ValueTooLarge(escrow);
        _checkRoomForBooking(rentalId, start, end);
        bookingId = ++bookingCount;
        _bookings[bookingId] = Booking({
            start: uint40(start), end: uint40(end), checkInAt: 0, checkOutAt: 0, status: BookingStatus.Requested,
            lotNumber: _lots[rental.lotId].number, rentalId: uint48(rentalId), vehicleCommitment: vehicleCommitment,
            renter: msg.sender, escrow: uint96(escrow)
        });
        _liveBookings[rentalId].push(bookingId);
        emit RentalRequested(bookingId, rentalId, rental.lotId, msg.sender, start, end, escrow, vehicleCommitment);
    }

    /// @notice Escrow due for booking [start, end) of a listing.
    function quote(uint256 rentalId, uint64 start, uint64 end) external view returns (uint256) {
        if (end <= start) revert InvalidWindow(start, end);
        return _cost(_rentalOf(rentalId).pricePerHour, end - start);
    }

    /// @notice The renter cancels before the cancel cutoff (`start - CANCEL_CUTOFF`): full refund. From then
    /// on the gateway may admit the car before it sees the cancellation, so the booking runs its course
    /// (no free parking).
    function cancelBooking(uint256 bookingId) external {
        Booking storage booking = _bookingOf(bookingId);
        if (booking.renter != msg.sender) revert NotRenter(bookingId, msg.sender);
        _requireStatus(bookingId, booking, BookingStatus.Requested);
        if (_pastCancelCutoff(booking)) revert TooLateToCancel(bookingId);
        booking.status = BookingStatus.Cancelled;
        _removeId(_liveBookings[booking.rentalId], bookingId);
        _credit(booking.renter, booking.escrow);
        emit BookingCancelled(bookingId, _lotIdOf[booking.lotNumber], booking.escrow);
    }

    // ---------------------------------------------------------------- steps 5 + 6: gateway records

    /// @notice Apply a batch of gate records from a gateway. Each record is two words:
    ///   word 0: seq (uint64, bits 192..255) | kind (uint8, bits 184..191) | bookingId (uint64, bits 120..183)
    ///           | timestamp (uint40, bits 80..119); word 1: the plate commitment.
    /// `seq` is the gateway's own record number, strictly increasing: a record at or below `lastSeq[msg.sender]`
    /// emits `GateRecordSkipped`. Never reverts per record: an invalid one emits `GateRecordRejected` and
    /// counts as processed.
    function recordGateEvents(uint256[] calldata records) external {
        if (gatewayLotCount[msg.sender] == 0) revert NotAGateway(msg.sender);
        if (records.length % 2 != 0) revert MalformedRecords(records.length);
        uint64 high = lastSeq[msg.sender];
        uint64 start = high;
        LotCache memory cache;
        for (uint256 i = 0; i < records.length; i += 2) {
            uint256 head = records[i];
            uint64 seq = uint64(head >> 192);
            if (seq <= high) {
                emit GateRecordSkipped(msg.sender, seq);
                continue;
            }
            high = seq;
            uint256 bookingId = uint64(head >> 120);
            RejectReason reason = _applyRecord(
                uint8(head >> 184), bookingId, uint40(head >> 80), bytes32(records[i + 1]), seq, cache
            );
            if (reason != RejectReason.None) emit GateRecordRejected(msg.sender, seq, bookingId, reason);
        }
        if (high != start) lastSeq[msg.sender] = high;
    }

    /// @notice True when the record `seq` of `gateway` has been processed (applied, rejected or skipped).
    function isProcessed(address gateway, uint64 seq) external view returns (bool) {
        return seq <= lastSeq[gateway];
    }

    /// @dev The lot of the previous record of the batch and whether the sender is its gateway (a batch is
    /// nearly always one lot: one storage read for the whole batch).
    struct LotCache {
        uint32 number;
        bytes32 lotId;
        bool allowed;
    }

    function _applyRecord(
        uint8 kind, uint256 bookingId, uint40 timestamp, bytes32 commitment, uint64 seq, LotCache memory cache
    ) private returns (RejectReason) {
        if (timestamp > block.timestamp + MAX_CLOCK_SKEW) return RejectReason.BadTimestamp;
        if (kind > uint8(RecordKind.Denied)) return RejectReason.UnknownKind;
        if (bookingId == 0 && kind == uint8(RecordKind.Denied)) {
            emit GateDenied(0, msg.sender, seq, commitment, timestamp);
            return RejectReason.None;
        }
        Booking storage booking = _bookings[bookingId];
        uint32 lotNumber = booking.lotNumber;
        if (lotNumber == 0) return RejectReason.UnknownBooking;
        if (cache.number != lotNumber) {
            cache.number = lotNumber;
            cache.lotId = _lotIdOf[lotNumber];
            cache.allowed = gatewayOf[cache.lotId][msg.sender];
        }
        if (!cache.allowed) return RejectReason.WrongLot;
        if (kind == uint8(RecordKind.Denied)) {
            emit GateDenied(bookingId, msg.sender, seq, commitment, timestamp);
            return RejectReason.None;
        }
        if (commitment != booking.vehicleCommitment) return RejectReason.CommitmentMismatch;
        if (kind == uint8(RecordKind.CheckIn)) return _checkIn(bookingId, booking, timestamp, cache.lotId);
        return _checkOut(bookingId, booking, timestamp, cache.lotId);
    }

    /// @dev Verification and check-in in one record (the second association).
    function _checkIn(uint256 bookingId, Booking storage booking, uint40 timestamp, bytes32 lotId)
        private
        returns (RejectReason)
    {
        if (booking.status != BookingStatus.Requested) return RejectReason.BadState;
        if (timestamp >= booking.end || uint64(timestamp) + GRACE_PERIOD < booking.start) {
            return RejectReason.OutsideWindow;
        }
        booking.status = BookingStatus.CheckedIn;
        booking.checkInAt = timestamp;
        emit SecondAssociation(bookingId, lotId, booking.rentalId, timestamp);
        return RejectReason.None;
    }

    function _checkOut(uint256 bookingId, Booking storage booking, uint40 timestamp, bytes32 lotId)
        private
        returns (RejectReason)
    {
        if (booking.status != BookingStatus.CheckedIn) return RejectReason.BadState;
        if (timestamp < booking.checkInAt) return RejectReason.BadTimestamp;
        booking.status = BookingStatus.CheckedOut;
        booking.checkOutAt = timestamp;
        emit CheckedOut(bookingId, lotId, timestamp);
        return RejectReason.None;
    }

    // ---------------------------------------------------------------- step 6: settlement, expiry, withdrawal

    /// @notice Settle checked-out bookings: the owner is paid from the booked start up to the check-out
    /// (at most the booked end), the rest is refunded. Anyone may call it; ids not checked out are ignored.
    function settle(uint256[] calldata bookingIds) external {
        for (uint256 i = 0; i < bookingIds.length; i++) {
            Booking storage booking = _bookings[bookingIds[i]];
            if (booking.status == BookingStatus.CheckedOut) _settle(bookingIds[i], booking, booking.checkOutAt);
        }
    }

    /// @notice Settle a checked-in booking whose gateway never reported check-out, after end + RECORD_DEADLINE:
    /// the owner is paid for the whole booked window. Anyone may call it.
    function settleOverdue(uint256 bookingId) external {
        Booking storage booking = _bookingOf(bookingId);
        if (booking.status == BookingStatus.Settled) revert AlreadySettled(bookingId);
        _requireStatus(bookingId, booking, BookingStatus.CheckedIn);
        uint64 due = uint64(booking.end) + RECORD_DEADLINE;
        if (block.timestamp <= due) revert NotYetExpired(bookingId, due);
        _settle(bookingId, booking, booking.end);
    }

    /// @notice Expire a booking never checked in, after end + RECORD_DEADLINE: full refund to the renter.
    /// Anyone may call it.
    function expireBooking(uint256 bookingId) external {
        Booking storage booking = _bookingOf(bookingId);
        _requireStatus(bookingId, booking, BookingStatus.Requested);
        uint64 due = uint64(booking.end) + RECORD_DEADLINE;
        if (block.timestamp <= due) revert NotYetExpired(bookingId, due);
        booking.status = BookingStatus.Expired;
        _removeId(_liveBookings[booking.rentalId], bookingId);
        _credit(booking.renter, booking.escrow);
        emit BookingExpired(bookingId, _lotIdOf[booking.lotNumber], booking.escrow);
    }

    /// @notice Pull payment: send the caller everything credited to it.
    function withdraw() external nonReentrant {
        uint256 amount = pendingWithdrawal[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        pendingWithdrawal[msg.sender] = 0;
        emit Withdrawal(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ---------------------------------------------------------------- views

    function getLot(bytes32 lotId) external view returns (Lot memory) {
        return _lots[lotId];
    }

    function getSpace(uint256 spaceId) external view returns (Space memory) {
        return _spaces[spaceId];
    }

    function getRentalEvent(uint256 rentalId) external view returns (RentalEvent memory) {
        return _rentals[rentalId];
    }

    function getBooking(uint256 bookingId) external view returns (BookingView memory) {
        Booking storage b = _bookings[bookingId];
        return BookingView({
            rentalId: b.rentalId, renter: b.renter, start: b.start, end: b.end, checkInAt: b.checkInAt,
            checkOutAt: b.checkOutAt, status: b.status, vehicleCommitment: b.vehicleCommitment, escrow: b.escrow
        });
    }

    function liveBookings(uint256 rentalId) external view returns (uint256[] memory) {
        return _liveBookings[rentalId];
    }

    // ---------------------------------------------------------------- internals

    /// @dev Owner is paid from the booked start up to `until` (capped at the booked end); the rest is refunded.
    function _settle(uint256 bookingId, Booking storage booking, uint64 until) private {
        uint64 usedUntil = until > booking.end ? booking.end : until;
        uint64 used = usedUntil > booking.start ? usedUntil - booking.start : 0;
        RentalEvent storage rental = _rentals[booking.rentalId];
        uint256 toOwner = _cost(rental.pricePerHour, used);
        if (toOwner > booking.escrow) toOwner = booking.escrow;
        uint256 refund = booking.escrow - toOwner;
        booking.status = BookingStatus.Settled;
        _credit(rental.owner, toOwner);
        _credit(booking.renter, refund);
        emit Settled(bookingId, rental.lotId, toOwner, refund);
    }

    /// @dev True from `start - CANCEL_CUTOFF` on: the gateway may admit the car before it sees a cancellation.
    function _pastCancelCutoff(Booking storage booking) private view returns (bool) {
        return block.timestamp + CANCEL_CUTOFF >= booking.start;
    }

    function _credit(address payee, uint256 amount) private {
        if (amount > 0) pendingWithdrawal[payee] += amount;
    }

    function _cost(uint256 pricePerHour, uint64 seconds_) private pure returns (uint256) {
        return (pricePerHour * seconds_ + 3599) / 3600;
    }

    function _checkNoOverlappingRental(uint256 spaceId, uint64 start, uint64 end) private {
        uint256[] storage live = _liveRentals[spaceId];
        uint256 i = 0;
        while (i < live.length) {
            RentalEvent storage other = _rentals[live[i]];
            if (other.end <= block.timestamp) {
                live[i] = live[live.length - 1]; // prune listings that are over
                live.pop();
                continue;
            }
            if (start < other.end && other.start < end) revert OverlappingRentalEvent(spaceId, live[i]);
            i++;
        }
        if (live.length >= MAX_ACTIVE_RENTALS) revert TooManyLive(spaceId);
    }

    /// @dev Prunes the listings of `spaceId` that are over, then tells whether one is left (its bookings
    /// may still be admitted; a cancelled listing left the list when it was cancelled).
    function _hasLiveRental(uint256 spaceId) private returns (bool) {
        uint256[] storage live = _liveRentals[spaceId];
        uint256 i = 0;
        while (i < live.length) {
            if (_rentals[live[i]].end <= block.timestamp) {
                live[i] = live[live.length - 1];
                live.pop();
                continue;
            }
            i++;
        }
        return live.length > 0;
    }

    /// @dev Prunes closed bookings from the live list (gate records never touch it), then checks overlap, the
    /// listing's bound and the renter's cap.
    function _checkRoomForBooking(uint256 rentalId, uint64 start, uint64 end) private {
        uint256[] storage live = _liveBookings[rentalId];
        uint256 mine = 0;
        uint256 i = 0;
        while (i < live.length) {
            Booking storage other = _bookings[live[i]];
            if (other.status != BookingStatus.Requested && other.status != BookingStatus.CheckedIn) {
                live[i] = live[live.length - 1];
                live.pop();
                continue;
            }
            if (start < other.end && other.start < end) revert OverlappingBooking(rentalId, live[i]);
            if (other.renter == msg.sender) mine++;
            i++;
        }
        if (live.length >= MAX_ACTIVE_BOOKINGS) revert TooManyLive(rentalId);
        if (mine >= MAX_BOOKINGS_PER_RENTER) revert TooManyBookingsOfRenter(rentalId, msg.sender);
    }

    function _removeId(uint256[] storage ids, uint256 id) private {
        for (uint256 i = 0; i < ids.length; i++) {
            if (ids[i] == id) {
                ids[i] = ids[ids.length - 1];
                ids.pop();
                return;
            }
        }
    }

    function _requireStatus(uint256 bookingId, Booking storage booking, BookingStatus wanted) private view {
        if (booking.status != wanted) revert BookingNotActive(bookingId, booking.status);
    }

    function _rentalOf(uint256 rentalId) private view returns (RentalEvent storage rental) {
        rental = _rentals[rentalId];
        if (rental.owner == address(0)) revert UnknownRentalEvent(rentalId);
    }

    function _bookingOf(uint256 bookingId) private view returns (Booking storage booking) {
        booking = _bookings[bookingId];
        if (booking.status == BookingStatus.None) revert UnknownBooking(bookingId);
    }
}
