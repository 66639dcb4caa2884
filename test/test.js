// The example of the original README (2013), kept as it was: `node test/test.js`.
var shm = require('../build/Release/shm');

function buff2hex(buff) {
	var hex = [];
	for (var i = 0; i < buff.length; i++) {
		hex.push(('0' + buff[i].toString(16)).slice(-2));
	}
	return hex.join(' ');
}

console.log("Object:\n", shm); 

var shmkey = 1236;

var shmid  = shm.openSHM(shmkey,'c',0,1024);		
console.log("opened shmkey:",shmkey, " shmid:",shmid);

var bubu = new Buffer("1234567890");
console.log("writing '1234567890', written:",shm.writeSHM(shmid,bubu,2,bubu.length));		//10

xxxx = shm.readSHM(shmid,2,10);
console.log("readed(HEXA):", buff2hex(xxxx));

console.log("waiting 10 secs to detach and close");
var timerD = setTimeout( function() {
	console.log("detatch retval:", shm.deleteSHM(shmid) );
	console.log("close retval:", shm.closeSHM(shmid) );
}, 10000);
