// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/// @title ParkgateRental: parking-space sharing with verified owners, escrowed bookings and gate records.
/// @notice Lifecycle (see docs/contract.md):
///  1. a VERIFIER attests an owner (`verifyOwner`); unverified owners cannot register spaces or list;
///  2. a verified owner lists a rental event for one of its spaces (`createRentalEvent`);
///  3. the listing emits `FirstAssociation` (space <-> lot address info <-> rental event);
///  4. a renter books a window inside the listing, paying the exact escrow and a vehicle commitment
///     (keyed hash of the plate, never the plate) (`requestRental`);
///  5. the lot's gateway verifies the plate it read against the commitment (`recordGateEvents`,
///     kind VehicleVerified) which emits `SecondAssociation` (renter <-> space <-> address <-> event);
///  6. gateway check-in / check-out records, settlement to the owner and refund of unused escrow
///     through pull payments (`withdraw`), cancellation and expiry rules, no overlapping bookings.
/// Gateway writes are idempotent: every gate record carries a unique event id; a processed id is skipped.
contract ParkgateRental is AccessControl, ReentrancyGuard {
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");
    bytes32 public constant LOT_ADMIN_ROLE = keccak256("LOT_ADMIN_ROLE");

    /// @notice After a booking's end plus this grace anyone may expire (refund) or settle (overdue) it.
    uint64 public constant GRACE_PERIOD = 15 minutes;
    /// @notice Gate record timestamps may be at most this far ahead of the block time (gateway clock skew).
    uint64 public constant MAX_CLOCK_SKEW = 5 minutes;
    /// @notice Bound on live bookings per rental event, so overlap checks and cancellation stay bounded in gas.
    uint256 public constant MAX_ACTIVE_BOOKINGS = 32;
    /// @notice Bound on live rental events per space, for the same reason.
    uint256 public constant MAX_ACTIVE_RENTALS = 32;
    /// @notice Longest rental event window; also keeps `end + GRACE_PERIOD` far from uint64 overflow.
    uint64 public constant MAX_RENTAL_WINDOW = 366 days;

    enum RecordKind { VehicleVerified, CheckIn, CheckOut, Denied }
    enum BookingStatus { None, Requested, Verified, CheckedIn, Settled, Cancelled, Expired }
    enum RejectReason {
        None, UnknownBooking, WrongLot, BadState, CommitmentMismatch, OutsideWindow, BadTimestamp, UnknownKind
    }

    struct Lot {
        bool exists;
        string geohash; // address information of the lot: geohash, no personal data
    }

    struct Space {
        bytes32 lotId;
        address owner;
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

    struct Booking {
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

    struct GateRecord {
        bytes32 eventId;
        uint8 kind;
        uint256 bookingId;
        bytes32 plateCommitment;
        uint64 timestamp;
    }

    mapping(address owner => bytes32 attestation) public ownerAttestation;
    mapping(bytes32 lotId => Lot) private _lots;
    mapping(bytes32 lotId => mapping(address gateway => bool)) public gatewayOf;
    mapping(address gateway => uint256 lots) public gatewayLotCount;
    mapping(uint256 spaceId => Space) private _spaces;
    mapping(uint256 rentalId => RentalEvent) private _rentals;
    mapping(uint256 bookingId => Booking) private _bookings;
    mapping(bytes32 eventId => bool) private _processed;
    mapping(address payee => uint256 amount) public pendingWithdrawal;
    mapping(uint256 spaceId => uint256[] rentalIds) private _liveRentals;
    mapping(uint256 rentalId => uint256[] bookingIds) private _liveBookings;

    uint256 public spaceCount;
    uint256 public rentalCount;
    uint256 public bookingCount;

    event OwnerVerified(address indexed owner, address indexed verifier, bytes32 attestation);
    event OwnerRevoked(address indexed owner, address indexed verifier);
    event LotRegistered(bytes32 indexed lotId, string geohash);
    event GatewaySet(bytes32 indexed lotId, address indexed gateway, bool enabled);
    event SpaceRegistered(uint256 indexed spaceId, bytes32 indexed lotId, address indexed owner, string location);
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
    event SecondAssociation(
        uint256 indexed bookingId, address indexed renter, bytes32 indexed lotId,
        uint256 spaceId, uint256 rentalId, string geohash, string location, bytes32 eventId
    );
    event CheckedIn(uint256 indexed bookingId, bytes32 indexed lotId, bytes32 eventId, uint64 timestamp);
    event CheckedOut(uint256 indexed bookingId, bytes32 indexed lotId, bytes32 eventId, uint64 timestamp);
    event GateDenied(bytes32 indexed eventId, uint256 indexed bookingId, bytes32 plateCommitment, uint64 timestamp);
    event Settled(uint256 indexed bookingId, bytes32 indexed lotId, uint256 toOwner, uint256 refund);
    event BookingCancelled(uint256 indexed bookingId, bytes32 indexed lotId, uint256 refund);
    event BookingExpired(uint256 indexed bookingId, bytes32 indexed lotId, uint256 refund);
    event GateRecordSkipped(bytes32 indexed eventId);
    event GateRecordRejected(bytes32 indexed eventId, uint256 indexed bookingId, RejectReason reason);
    event Withdrawal(address indexed payee, uint256 amount);

    error NotVerifiedOwner(address account);
    error UnknownLot(bytes32 lotId);
    error LotExists(bytes32 lotId);
    error UnknownSpace(uint256 spaceId);
    error NotSpaceOwner(uint256 spaceId, address account);
    error UnknownRentalEvent(uint256 rentalId);
    error NotRentalOwner(uint256 rentalId, address account);
    error RentalEventCancelledAlready(uint256 rentalId);
    error InvalidWindow(uint64 start, uint64 end);
    error OverlappingRentalEvent(uint256 spaceId, uint256 otherRentalId);
    error OverlappingBooking(uint256 rentalId, uint256 otherBookingId);
    error TooManyLive(uint256 id);
    error ZeroPrice();
    error EmptyCommitment();
    error WrongPayment(uint256 expected, uint256 sent);
    error UnknownBooking(uint256 bookingId);
    error NotRenter(uint256 bookingId, address account);
    error BookingNotActive(uint256 bookingId, BookingStatus status);
    error AlreadySettled(uint256 bookingId);
    error TooLateToCancel(uint256 bookingId);
    error NotYetExpired(uint256 bookingId, uint64 expiresAt);
    error HasCheckedInBooking(uint256 rentalId, uint256 bookingId);
    error NotAGateway(address account);
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
        _lots[lotId] = Lot({exists: true, geohash: geohash});
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

    function registerSpace(bytes32 lotId, string calldata location) external returns (uint256 spaceId) {
        if (!isVerifiedOwner(msg.sender)) revert NotVerifiedOwner(msg.sender);
        if (!_lots[lotId].exists) revert UnknownLot(lotId);
        if (bytes(location).length == 0) revert EmptyString();
        spaceId = ++spaceCount;
        _spaces[spaceId] = Space({lotId: lotId, owner: msg.sender, location: location});
        emit SpaceRegistered(spaceId, lotId, msg.sender, location);
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
        if (start >= end || start < block.timestamp || end - start > MAX_RENTAL_WINDOW) {
            revert InvalidWindow(start, end);
        }
        if (pricePerHour == 0) revert ZeroPrice();
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

    /// @notice The owner withdraws a listing; bookings not yet checked in are refunded in full.
    function cancelRentalEvent(uint256 rentalId) external {
        RentalEvent storage rental = _rentalOf(rentalId);
        if (rental.owner != msg.sender) revert NotRentalOwner(rentalId, msg.sender);
        if (rental.cancelled) revert RentalEventCancelledAlready(rentalId);
        uint256[] storage live = _liveBookings[rentalId];
        for (uint256 i = 0; i < live.length; i++) {
            if (_bookings[live[i]].status == BookingStatus.CheckedIn) revert HasCheckedInBooking(rentalId, live[i]);
        }
        while (live.length > 0) {
            uint256 bookingId = live[live.length - 1];
            live.pop();
            Booking storage booking = _bookings[bookingId];
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
    function requestRental(uint256 rentalId, uint64 start, uint64 end, bytes32 vehicleCommitment)
        external
        payable
        nonReentrant
        returns (uint256 bookingId)
    {
        RentalEvent storage rental = _rentalOf(rentalId);
        if (rental.cancelled) revert RentalEventCancelledAlready(rentalId);
        if (start >= end || start < rental.start || end > rental.end || end <= block.timestamp) {
            revert InvalidWindow(start, end);
        }
        if (vehicleCommitment == bytes32(0)) revert EmptyCommitment();
        uint256 escrow = _cost(rental.pricePerHour, end - start);
        if (msg.value != escrow) revert WrongPayment(escrow, msg.value);
        _checkNoOverlappingBooking(rentalId, start, end);
        bookingId = ++bookingCount;
        _bookings[bookingId] = Booking({
            rentalId: rentalId, renter: msg.sender, start: start, end: end, checkInAt: 0, checkOutAt: 0,
            status: BookingStatus.Requested, vehicleCommitment: vehicleCommitment, escrow: escrow
        });
        _liveBookings[rentalId].push(bookingId);
        emit RentalRequested(bookingId, rentalId, rental.lotId, msg.sender, start, end, escrow, vehicleCommitment);
    }

    /// @notice Escrow due for booking [start, end) of a listing.
    function quote(uint256 rentalId, uint64 start, uint64 end) external view returns (uint256) {
        if (end <= start) revert InvalidWindow(start, end);
        return _cost(_rentalOf(rentalId).pricePerHour, end - start);
    }

    /// @notice The renter cancels before the booked window starts: full refund.
    function cancelBooking(uint256 bookingId) external {
        Booking storage booking = _bookingOf(bookingId);
        if (booking.renter != msg.sender) revert NotRenter(bookingId, msg.sender);
        _requireStatus(bookingId, booking, BookingStatus.Requested, BookingStatus.Verified);
        if (block.timestamp >= booking.start) revert TooLateToCancel(bookingId);
        _close(bookingId, booking, BookingStatus.Cancelled);
        _credit(booking.renter, booking.escrow);
        emit BookingCancelled(bookingId, _rentals[booking.rentalId].lotId, booking.escrow);
    }

    // ---------------------------------------------------------------- steps 5 + 6: gateway records

    /// @notice Apply a batch of gate records from a gateway. Never reverts per record: a processed event id
    /// emits `GateRecordSkipped`; an invalid record emits `GateRecordRejected` and is marked processed.
    function recordGateEvents(GateRecord[] calldata records) external {
        if (gatewayLotCount[msg.sender] == 0) revert NotAGateway(msg.sender);
        for (uint256 i = 0; i < records.length; i++) {
            GateRecord calldata record = records[i];
            if (_processed[record.eventId]) {
                emit GateRecordSkipped(record.eventId);
                continue;
            }
            _processed[record.eventId] = true;
            RejectReason reason = _applyRecord(record);
            if (reason != RejectReason.None) emit GateRecordRejected(record.eventId, record.bookingId, reason);
        }
    }

    function isProcessed(bytes32 eventId) external view returns (bool) {
        return _processed[eventId];
    }

    function _applyRecord(GateRecord calldata record) private returns (RejectReason) {
        if (record.timestamp > block.timestamp + MAX_CLOCK_SKEW) return RejectReason.BadTimestamp;
        Booking storage booking = _bookings[record.bookingId];
        if (booking.status == BookingStatus.None) {
            if (record.kind == uint8(RecordKind.Denied) && record.bookingId == 0) return _deny(record);
            return RejectReason.UnknownBooking;
        }
        if (!gatewayOf[_rentals[booking.rentalId].lotId][msg.sender]) return RejectReason.WrongLot;
        if (record.kind == uint8(RecordKind.VehicleVerified)) return _verifyVehicle(record, booking);
        if (record.kind == uint8(RecordKind.CheckIn)) return _checkIn(record, booking);
        if (record.kind == uint8(RecordKind.CheckOut)) return _checkOut(record, booking);
        if (record.kind == uint8(RecordKind.Denied)) return _deny(record);
        return RejectReason.UnknownKind;
    }

    function _verifyVehicle(GateRecord calldata record, Booking storage booking) private returns (RejectReason) {
        if (booking.status != BookingStatus.Requested) return RejectReason.BadState;
        if (record.plateCommitment != booking.vehicleCommitment) return RejectReason.CommitmentMismatch;
        if (record.timestamp >= booking.end) return RejectReason.OutsideWindow;
        booking.status = BookingStatus.Verified;
        RentalEvent storage rental = _rentals[booking.rentalId];
        Space storage space = _spaces[rental.spaceId];
        emit SecondAssociation(
            record.bookingId, booking.renter, rental.lotId, rental.spaceId, booking.rentalId,
            _lots[rental.lotId].geohash, space.location, record.eventId
        );
        return RejectReason.None;
    }

    function _checkIn(GateRecord calldata record, Booking storage booking) private returns (RejectReason) {
        if (booking.status != BookingStatus.Verified) return RejectReason.BadState;
        if (record.plateCommitment != booking.vehicleCommitment) return RejectReason.CommitmentMismatch;
        if (record.timestamp >= booking.end || record.timestamp + GRACE_PERIOD < booking.start) {
            return RejectReason.OutsideWindow;
        }
        booking.status = BookingStatus.CheckedIn;
        booking.checkInAt = record.timestamp;
        emit CheckedIn(record.bookingId, _rentals[booking.rentalId].lotId, record.eventId, record.timestamp);
        return RejectReason.None;
    }

    function _checkOut(GateRecord calldata record, Booking storage booking) private returns (RejectReason) {
        if (booking.status != BookingStatus.CheckedIn) return RejectReason.BadState;
        if (record.plateCommitment != booking.vehicleCommitment) return RejectReason.CommitmentMismatch;
        if (record.timestamp < booking.checkInAt) return RejectReason.BadTimestamp;
        booking.checkOutAt = record.timestamp;
        emit CheckedOut(record.bookingId, _rentals[booking.rentalId].lotId, record.eventId, record.timestamp);
        _settle(record.bookingId, booking, record.timestamp);
        return RejectReason.None;
    }

    function _deny(GateRecord calldata record) private returns (RejectReason) {
        emit GateDenied(record.eventId, record.bookingId, record.plateCommitment, record.timestamp);
        return RejectReason.None;
    }

    // ---------------------------------------------------------------- step 6: settlement, expiry, withdrawal

    /// @notice Settle a checked-in booking whose gateway never reported check-out, after end + grace:
    /// the owner is paid for the whole booked window. Anyone may call it.
    function settleOverdue(uint256 bookingId) external {
        Booking storage booking = _bookingOf(bookingId);
        if (booking.status == BookingStatus.Settled) revert AlreadySettled(bookingId);
        _requireStatus(bookingId, booking, BookingStatus.CheckedIn, BookingStatus.CheckedIn);
        uint64 due = booking.end + GRACE_PERIOD;
        if (block.timestamp <= due) revert NotYetExpired(bookingId, due);
        _settle(bookingId, booking, booking.end);
    }

    /// @notice Expire a booking never checked in, after end + grace: full refund to the renter. Anyone may call it.
    function expireBooking(uint256 bookingId) external {
        Booking storage booking = _bookingOf(bookingId);
        _requireStatus(bookingId, booking, BookingStatus.Requested, BookingStatus.Verified);
        uint64 due = booking.end + GRACE_PERIOD;
        if (block.timestamp <= due) revert NotYetExpired(bookingId, due);
        _close(bookingId, booking, BookingStatus.Expired);
        _credit(booking.renter, booking.escrow);
        emit BookingExpired(bookingId, _rentals[booking.rentalId].lotId, booking.escrow);
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

    function getBooking(uint256 bookingId) external view returns (Booking memory) {
        return _bookings[bookingId];
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
        _close(bookingId, booking, BookingStatus.Settled);
        _credit(rental.owner, toOwner);
        _credit(booking.renter, refund);
        emit Settled(bookingId, rental.lotId, toOwner, refund);
    }

    function _close(uint256 bookingId, Booking storage booking, BookingStatus status) private {
        booking.status = status;
        _removeId(_liveBookings[booking.rentalId], bookingId);
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

    function _checkNoOverlappingBooking(uint256 rentalId, uint64 start, uint64 end) private view {
        uint256[] storage live = _liveBookings[rentalId];
        if (live.length >= MAX_ACTIVE_BOOKINGS) revert TooManyLive(rentalId);
        for (uint256 i = 0; i < live.length; i++) {
            Booking storage other = _bookings[live[i]];
            if (start < other.end && other.start < end) revert OverlappingBooking(rentalId, live[i]);
        }
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

    function _requireStatus(uint256 bookingId, Booking storage booking, BookingStatus a, BookingStatus b)
        private
        view
    {
        if (booking.status != a && booking.status != b) revert BookingNotActive(bookingId, booking.status);
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
