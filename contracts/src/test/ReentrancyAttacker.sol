// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ParkgateRental} from "../ParkgateRental.sol";

/// @notice Test-only renter that tries to re-enter `withdraw` (and `requestRental`) from its receive hook.
/// Deployed only by the test-suite to prove the pull-payment path is not re-entrant.
contract ReentrancyAttacker {
    enum Mode { CatchReentry, BubbleReentry }

    ParkgateRental public immutable rental;
    Mode public mode;
    uint256 public received;
    uint256 public reentryAttempts;
    bool public reentrySucceeded;
    bytes public lastError;

    constructor(ParkgateRental rental_) {
        rental = rental_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    function book(uint256 rentalId, uint64 start, uint64 end, bytes32 commitment) external payable returns (uint256) {
        return rental.requestRental{value: msg.value}(rentalId, start, end, commitment);
    }

    function cancel(uint256 bookingId) external {
        rental.cancelBooking(bookingId);
    }

    function attack() external {
        rental.withdraw();
    }

    receive() external payable {
        received += msg.value;
        if (reentryAttempts > 0) return;
        reentryAttempts += 1;
        if (mode == Mode.BubbleReentry) {
            rental.withdraw(); // reverts with ReentrancyGuardReentrantCall, failing the outer transfer
            return;
        }
        try rental.withdraw() {
            reentrySucceeded = true;
        } catch (bytes memory reason) {
            lastError = reason;
        }
    }
}
